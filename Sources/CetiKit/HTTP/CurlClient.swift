import CCurl
import CCurlShim
import Foundation

/// HTTP over libcurl's easy interface. libcurl blocks, so it never runs on Swift's cooperative
/// pool: a fixed set of worker threads, each owning one easy handle (and so one kept-alive
/// connection), takes requests from a queue and resumes the caller's continuation when done.
public final class CurlClient: @unchecked Sendable {
    public struct Options: Sendable {
        /// Requests in flight at once (one thread and one connection each).
        public var connections: Int = 4
        /// Give up on a request when no byte has moved for this long.
        public var stallSeconds: Int = 60
        public var connectTimeoutSeconds: Int = 20
        /// `--bwlimit`: the cap on the total rate, by time of day; nil for none.
        public var bandwidth: BandwidthSchedule? = nil
        public var verbose = false
        public init() {}
    }

    private struct Job {
        let request: HTTPRequest
        let onBytesSent: (@Sendable (Int64) -> Void)?
        let continuation: CheckedContinuation<HTTPResponse, Error>
    }

    private let options: Options
    private let limiter: RateLimiter?
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var closed = false
    private var threads: [Thread] = []
    private var running = 0

    /// libcurl's process-wide setup, once, before the first handle (also for `NotifyCurl`).
    static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public init(options: Options = Options()) {
        _ = Self.globalInit
        self.options = options
        self.limiter = options.bandwidth.map { RateLimiter(schedule: $0) }
        for i in 0..<max(1, options.connections) {
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.name = "ceti-curl-\(i)"
            thread.stackSize = 1 << 20
            threads.append(thread)
            running += 1
            thread.start()
        }
    }

    /// Stops the worker threads once the queue is empty. Call before exiting.
    public func shutdown() {
        condition.lock()
        closed = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    /// Sends one request and returns whatever status came back; only transport failures throw.
    public func perform(_ request: HTTPRequest, onBytesSent: (@Sendable (Int64) -> Void)? = nil) async throws -> HTTPResponse {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            queue.append(Job(request: request, onBytesSent: onBytesSent, continuation: continuation))
            condition.signal()
            condition.unlock()
        }
    }

    private func workerLoop() {
        guard let handle = curl_easy_init() else {
            fatalError("libcurl: curl_easy_init failed")
        }
        defer {
            curl_easy_cleanup(handle)
            condition.lock()
            running -= 1
            condition.broadcast()
            condition.unlock()
        }
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty && closed {
                condition.unlock()
                return
            }
            let job = queue.removeFirst()
            condition.unlock()
            job.continuation.resume(with: Result { try run(job, on: handle) })
        }
    }

    private func run(_ job: Job, on handle: UnsafeMutableRawPointer) throws -> HTTPResponse {
        let request = job.request
        let transfer = CurlTransfer(request: request, limiter: limiter, onBytesSent: job.onBytesSent)
        let userdata = Unmanaged.passUnretained(transfer).toOpaque()

        // curl_easy_reset keeps the connection cache, so the next request reuses the connection.
        curl_easy_reset(handle)
        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(headerList) }
        for (name, value) in request.headers {
            headerList = curl_slist_append(headerList, value.isEmpty ? "\(name);" : "\(name): \(value)")
        }
        // No "Expect: 100-continue" round trip per part: on a 50 ms uplink it costs more than it saves.
        headerList = curl_slist_append(headerList, "Expect:")
        if request.headers.first(where: { $0.0.lowercased() == "content-type" }) == nil {
            headerList = curl_slist_append(headerList, "Content-Type:")
        }

        ceti_curl_setopt_string(handle, CURLOPT_URL, request.url)
        ceti_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        ceti_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, options.connectTimeoutSeconds)
        ceti_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
        ceti_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, options.stallSeconds)
        ceti_curl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        ceti_curl_setopt_long(handle, CURLOPT_UPLOAD_BUFFERSIZE, 512 * 1024)
        ceti_curl_setopt_string(handle, CURLOPT_USERAGENT, "ceti/\(Ceti.version)")
        ceti_curl_setopt_long(handle, CURLOPT_VERBOSE, options.verbose ? 1 : 0)

        switch request.method {
        case "GET": ceti_curl_setopt_long(handle, CURLOPT_HTTPGET, 1)
        case "HEAD": ceti_curl_setopt_long(handle, CURLOPT_NOBODY, 1)
        case "PUT":
            ceti_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            ceti_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.body.length))
        case "POST":
            ceti_curl_setopt_long(handle, CURLOPT_POST, 1)
            ceti_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.length))
        default:
            ceti_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
        }
        transfer.attach(to: handle, sendsBody: request.method == "PUT" || request.method == "POST")
        ceti_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)
        ceti_curl_setopt_data_cb(handle, CURLOPT_HEADERFUNCTION, curlHeaderCallback)
        ceti_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, userdata)

        let code = withExtendedLifetime(transfer) { curl_easy_perform(handle) }
        if code != CURLE_OK {
            // Undo the progress of a request that did not complete; its retry counts again.
            job.onBytesSent?(-transfer.sent)
            if transfer.readErrno != 0 { throw HTTPError.bodyRead(errno: transfer.readErrno) }
            let message = String(cString: curl_easy_strerror(code))
            throw HTTPError.transport(code: Int32(code.rawValue), message: message, url: request.url)
        }
        var status = 0
        ceti_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: transfer.headers, body: transfer.body)
    }
}
