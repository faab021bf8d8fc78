import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The watcher's status page (`ceti watch --status-listen HOST:PORT`), served by Hummingbird:
/// `GET /` the HTML page, `GET /status.json` the snapshot, `GET /metrics` Prometheus text. It has no
/// login, so it listens on loopback only unless the operator says `--status-listen-any`. Every
/// request reads one whole snapshot of the board; nothing on it is a secret.
public final class StatusServer: Sendable {
    /// The port actually bound: the one asked for, or the free one picked for port 0.
    public let port: Int
    /// The host as given (`127.0.0.1`, `::1`, `localhost`, `0.0.0.0`).
    public let host: String
    private let group: ServiceGroup
    private let running: Task<Void, Never>
    /// Whether the server ending is news for the operator (false once stop() is called).
    private let reportsEnd: Locked<Bool>

    /// Where the page is: `http://127.0.0.1:8080/`, `http://[::1]:8080/`.
    public var url: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)/" }

    private init(port: Int, host: String, group: ServiceGroup, running: Task<Void, Never>, reportsEnd: Locked<Bool>) {
        self.port = port
        self.host = host
        self.group = group
        self.running = running
        self.reportsEnd = reportsEnd
    }

    /// Binds `listen` (`HOST:PORT`, `[IPv6]:PORT`; port 0 picks a free port) and serves in the
    /// background until `stop()`. Throws a `UsageError` (exit 2) for an address that does not parse,
    /// a non-loopback host without `allowAnyAddress`, and an address that cannot be bound (a port
    /// in use, a host that does not resolve): each names the address and the fix.
    public static func start(listen: String, allowAnyAddress: Bool, board: StatusBoard, console: Console) async throws -> StatusServer {
        let (host, port) = try parse(listen)
        guard allowAnyAddress || isLoopback(host) else {
            throw UsageError(
                "--status-listen \(listen): \(host) is not a loopback address, and the status page has no login; "
                    + "listen on 127.0.0.1, or add --status-listen-any to serve it to the network")
        }
        // Errors reach the operator as every ceti error does; the server's chatter only with -vv.
        let logger = Logger(label: "ceti.status-page") { _ in
            ConsoleLogHandler(console: console, logLevel: console.verbosity == .debug ? .info : .error)
        }
        let (bound, boundSink) = AsyncThrowingStream.makeStream(of: Int.self)
        let app = Application(
            responder: StatusResponder(board: board, console: console),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port)),
            onServerRunning: { channel in boundSink.yield(channel.localAddress?.port ?? port) },
            logger: logger
        )
        var configuration = ServiceGroupConfiguration(services: [app], logger: logger)
        // stop() waits for requests in flight, but a client that never finishes one must not hold
        // the watcher's exit: after this, they are cancelled.
        configuration.maximumGracefulShutdownDuration = .seconds(2)
        let group = ServiceGroup(configuration: configuration)
        let reportsEnd = Locked(false)
        let running = Task {
            do {
                try await group.run()
                boundSink.finish()
                if reportsEnd.value { console.error("status page \(listen): the server stopped; the watcher goes on without it") }
            } catch {
                boundSink.finish(throwing: error)
                if reportsEnd.value {
                    console.error("status page \(listen): the server stopped (\(error)); the watcher goes on without it")
                }
            }
        }
        do {
            for try await boundPort in bound {
                reportsEnd.value = true
                return StatusServer(port: boundPort, host: host, group: group, running: running, reportsEnd: reportsEnd)
            }
        } catch {
            throw UsageError("--status-listen \(listen): cannot listen there (\(reason(error))); choose another address or port")
        }
        // Not listening, and the caller was cancelled or the server ended: nothing may linger.
        running.cancel()
        try Task.checkCancellation()
        throw UsageError("--status-listen \(listen): the server ended before it listened")
    }

    /// Stops listening (the port is free when this returns), lets requests in flight finish (at
    /// most 2 s) and returns when the server has ended.
    public func stop() async {
        reportsEnd.value = false
        await group.triggerGracefulShutdown()
        await running.value
    }

    /// `HOST:PORT` or `[IPv6]:PORT`, the port 0...65535.
    static func parse(_ listen: String) throws -> (host: String, port: Int) {
        let usage = UsageError(
            "--status-listen \(listen): expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080 (port 0 picks a free port)")
        let host: Substring
        let portText: Substring
        if listen.hasPrefix("[") {
            guard let close = listen.firstIndex(of: "]"), listen[listen.index(after: close)...].hasPrefix(":") else { throw usage }
            host = listen[listen.index(after: listen.startIndex)..<close]
            portText = listen[listen.index(close, offsetBy: 2)...]
        } else {
            guard let colon = listen.lastIndex(of: ":") else { throw usage }
            host = listen[..<colon]
            portText = listen[listen.index(after: colon)...]
            if host.contains(":") {
                throw UsageError("--status-listen \(listen): an IPv6 address goes in brackets, e.g. [::1]:8080")
            }
        }
        guard !host.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), (0...65535).contains(port) else {
            throw usage
        }
        return (String(host), port)
    }

    /// 127.0.0.0/8, ::1 (also as ::ffff:127.x.x.x) and `localhost`. Any other name is not, even
    /// one that resolves to loopback today: what it resolves to can change.
    static func isLoopback(_ host: String) -> Bool {
        if ["localhost", "localhost."].contains(host.lowercased()) { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, host, &v6) == 1 else { return false }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        let loopback = [UInt8](repeating: 0, count: 15) + [1]
        let mappedV4 = [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF]
        return bytes == loopback || (Array(bytes[0..<12]) == mappedV4 && bytes[12] == 127)
    }

    /// Why a bind failed, as an operator reads it: "Address already in use", not NIO's call trace.
    private static func reason(_ error: Error) -> String {
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)) }
        return "\(error)"
    }

    /// `/metrics`: Prometheus text exposition format 0.0.4. Every family is always present:
    /// `ceti_watch_sessions` has a sample for every state (0 when none), and
    /// `ceti_watch_last_success_timestamp_seconds` is 0 until a session first completes.
    static func metrics(_ status: WatchStatus) -> String {
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            lines += ["# HELP \(name) \(help)", "# TYPE \(name) \(type)"] + samples.map { "\(name)\($0.labels) \($0.value)" }
        }
        let byState = status.sessionsByState
        family(
            "ceti_watch_uploaded_bytes_total", "counter", "Bytes verified in S3 since the watcher started.",
            [("", "\(status.uploadedBytes)")])
        family(
            "ceti_watch_sessions", "gauge", "Sessions the watcher knows, by state.",
            WatchStatus.State.allCases.map { ("{state=\"\($0.rawValue)\"}", "\(byState[$0] ?? 0)") })
        family(
            "ceti_watch_queue_size", "gauge", "Sessions waiting for or in their upload (uploading or failed).",
            [("", "\(status.queueSize)")])
        family(
            "ceti_watch_pending_bytes", "gauge", "Bytes of sessions not yet complete (waiting, incomplete, uploading, failed).",
            [("", "\(status.pendingBytes)")])
        family(
            "ceti_watch_last_success_timestamp_seconds", "gauge",
            "When a session last completed, in seconds since the epoch; 0 before the first.",
            [("", status.lastSuccessEpoch.map { String(format: "%.3f", $0) } ?? "0")])
        return lines.joined(separator: "\n") + "\n"
    }

    /// `/status.json`: the snapshot (snake_case keys, sorted, nil fields left out), plus what the
    /// page derives from it: `queue_size` and `sessions_by_state` (every state).
    static func json(_ status: WatchStatus) throws -> String {
        try JSONOutput.encode(StatusDocument(status: status))
    }
}

/// The snapshot's own keys, then the derived ones, in one JSON object.
private struct StatusDocument: Encodable {
    let status: WatchStatus

    enum Derived: String, CodingKey { case queueSize, sessionsByState }

    func encode(to encoder: Encoder) throws {
        try status.encode(to: encoder)
        var container = encoder.container(keyedBy: Derived.self)
        try container.encode(status.queueSize, forKey: .queueSize)
        let byState = status.sessionsByState
        try container.encode(
            Dictionary(uniqueKeysWithValues: WatchStatus.State.allCases.map { ($0.rawValue, byState[$0] ?? 0) }), forKey: .sessionsByState)
    }
}

/// The three routes; anything else is 404 (405 for another method on one of them).
private struct StatusResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let board: StatusBoard
    let console: Console

    func respond(to request: Request, context: Context) async throws -> Response {
        let response = route(request)
        console.debug("status page: \(request.method) \(request.uri.path.printable) \(response.status.code)")
        return response
    }

    private func route(_ request: Request) -> Response {
        let path = request.uri.path
        guard ["/", "/status.json", "/metrics"].contains(path) else {
            return Self.text(.notFound, "not found: the status page serves /, /status.json and /metrics\n")
        }
        guard request.method == .get else {
            var response = Self.text(.methodNotAllowed, "\(path) answers GET only\n")
            response.headers[.allow] = "GET"
            return response
        }
        let status = board.snapshot
        switch path {
        case "/status.json":
            do {
                return Self.response(.ok, "application/json", try StatusServer.json(status) + "\n")
            } catch {
                console.error("status page: /status.json could not be encoded: \(error)")
                return Self.text(.internalServerError, "status.json could not be encoded\n")
            }
        case "/metrics":
            return Self.response(.ok, "text/plain; version=0.0.4; charset=utf-8", StatusServer.metrics(status))
        default:
            var response = Self.response(.ok, "text/html; charset=utf-8", StatusPage.html(status))
            // No script, nothing fetched: even a name that escaped escaping could run nothing.
            response.headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
            return response
        }
    }

    private static func text(_ status: Hummingbird.HTTPResponse.Status, _ body: String) -> Response {
        response(status, "text/plain; charset=utf-8", body)
    }

    private static func response(_ status: Hummingbird.HTTPResponse.Status, _ contentType: String, _ body: String) -> Response {
        // The page is live: a cached copy would show an old state.
        Response(
            status: status, headers: [.contentType: contentType, .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Hummingbird's and ServiceLifecycle's log lines, through the console: errors always (a server
/// failing), the rest only with -vv; never to stdout, which carries results.
private struct ConsoleLogHandler: LogHandler {
    let console: Console
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(console: Console, logLevel: Logger.Level) {
        self.console = console
        self.logLevel = logLevel
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let details = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
        let line = "status page: \(event.message)" + (details.isEmpty ? "" : " (\(details.joined(separator: ", ")))")
        event.level >= .error ? console.error(line) : console.debug(line)
    }
}
