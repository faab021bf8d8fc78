import CCurl
import CCurlShim
import Foundation

/// The state libcurl's callbacks see during one request: where the body comes from and where the
/// response goes. Lives on one curl worker thread for the duration of one `curl_easy_perform`.
final class CurlTransfer {
    let request: HTTPRequest
    let limiter: RateLimiter?
    let onBytesSent: (@Sendable (Int64) -> Void)?
    var sent: Int64 = 0
    var readErrno: Int32 = 0
    var status = 0
    var headers: [(String, String)] = []
    var body: [UInt8] = []
    /// Error bodies are small XML documents; anything larger than this is not ours to keep.
    static let maxBody = 4 << 20

    init(request: HTTPRequest, limiter: RateLimiter?, onBytesSent: (@Sendable (Int64) -> Void)?) {
        self.request = request
        self.limiter = limiter
        self.onBytesSent = onBytesSent
    }

    /// Points the handle's callbacks at this transfer (it must outlive the perform): the response
    /// body always, the request body (read and rewound for a resend) when `sendsBody`.
    func attach(to handle: UnsafeMutableRawPointer, sendsBody: Bool) {
        let userdata = Unmanaged.passUnretained(self).toOpaque()
        if sendsBody {
            ceti_curl_setopt_data_cb(handle, CURLOPT_READFUNCTION, curlReadCallback)
            ceti_curl_setopt_pointer(handle, CURLOPT_READDATA, userdata)
            ceti_curl_setopt_seek_cb(handle, curlSeekCallback)
            ceti_curl_setopt_pointer(handle, CURLOPT_SEEKDATA, userdata)
        }
        ceti_curl_setopt_data_cb(handle, CURLOPT_WRITEFUNCTION, curlWriteCallback)
        ceti_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, userdata)
    }

    func read(into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> Int {
        let remaining = request.body.length - sent
        guard remaining > 0 else { return 0 }
        var want = min(Int64(capacity), remaining)
        if let limiter {
            want = min(want, Int64(limiter.chunk))
            limiter.acquire(Int(want))
        }
        let n: Int
        switch request.body {
        case .empty:
            return 0
        case .bytes(let bytes):
            let start = Int(sent)
            bytes.withUnsafeBytes { raw in
                UnsafeMutableRawPointer(buffer).copyMemory(from: raw.baseAddress! + start, byteCount: Int(want))
            }
            n = Int(want)
        case .file(let fd, let offset, _):
            var got = 0
            while got < Int(want) {
                let r = pread(fd, buffer + got, Int(want) - got, off_t(offset + sent + Int64(got)))
                if r < 0 {
                    if errno == EINTR { continue }
                    readErrno = errno
                    return Int(CURL_READFUNC_ABORT)
                }
                if r == 0 {
                    // The file shrank under us: abort rather than send a short body.
                    readErrno = EIO
                    return Int(CURL_READFUNC_ABORT)
                }
                got += r
            }
            n = got
        }
        sent += Int64(n)
        onBytesSent?(Int64(n))
        return n
    }

    /// libcurl rewinds when it must resend on a fresh connection.
    func seek(to offset: Int64) -> Bool {
        guard offset >= 0, offset <= request.body.length else { return false }
        onBytesSent?(offset - sent)
        sent = offset
        return true
    }

    func header(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("HTTP/") {
            // A new status line (after 100 Continue or a redirect) starts a new header block.
            headers.removeAll()
            let fields = trimmed.split(separator: " ", maxSplits: 2)
            if fields.count >= 2, let code = Int(fields[1]) { status = code }
            return
        }
        guard let colon = trimmed.firstIndex(of: ":") else { return }
        let name = String(trimmed[..<colon])
        let value = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        headers.append((name, value))
    }

    func write(_ data: UnsafeRawBufferPointer) -> Bool {
        guard body.count + data.count <= Self.maxBody else { return false }
        body.append(contentsOf: data)
        return true
    }
}

// libcurl's C callbacks: each recovers its CurlTransfer from the userdata pointer.

let curlReadCallback: ceti_curl_data_cb = { buffer, size, count, userdata in
    guard let buffer, let userdata else { return 0 }
    let t = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
    return t.read(into: buffer, capacity: size * count)
}

let curlWriteCallback: ceti_curl_data_cb = { buffer, size, count, userdata in
    guard let buffer, let userdata else { return 0 }
    let t = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * count
    return t.write(UnsafeRawBufferPointer(start: buffer, count: n)) ? n : 0
}

let curlHeaderCallback: ceti_curl_data_cb = { buffer, size, count, userdata in
    guard let buffer, let userdata else { return 0 }
    let t = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * count
    t.header(String(decoding: UnsafeRawBufferPointer(start: buffer, count: n), as: UTF8.self))
    return n
}

let curlSeekCallback: ceti_curl_seek_cb = { userdata, offset, origin in
    guard let userdata, origin == SEEK_SET else { return Int32(CURL_SEEKFUNC_CANTSEEK) }
    let t = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
    return t.seek(to: Int64(offset)) ? Int32(CURL_SEEKFUNC_OK) : Int32(CURL_SEEKFUNC_FAIL)
}
