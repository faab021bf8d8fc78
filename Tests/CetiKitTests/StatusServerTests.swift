import Foundation
import Testing

@testable import CetiKit

/// The watcher's status page over real HTTP on loopback: the three routes, escaping, the JSON
/// round trip, the Prometheus text, the loopback rule, live updates and a clean stop.
@Suite struct StatusServerTests {
    static let hostile = "card-<script>alert(1)</script>&\"'"

    /// A board with a session in every state, one of them named to break out of HTML.
    static func board() -> StatusBoard {
        var status = WatchStatus(version: Ceti.version, startedAt: "2026-12-01T20:00:00Z")
        status.lastScanAt = "2026-12-01T21:40:00Z"
        status.lastSuccessAt = "2026-12-01T21:30:00Z"
        status.lastSuccessEpoch = 1_796_247_000
        status.uploadedBytes = 3 << 30
        status.pendingBytes = 7 << 20
        let t = "2026-12-01T21:00:00Z"
        status.sessions = [
            .init(
                root: "/mnt/drone", name: "2026-12-01-waiting", profile: "p", state: .waiting, files: 3, bytes: 1 << 20, changedAt: t,
                updatedAt: t),
            .init(
                root: "/mnt/drone", name: "2026-12-01-incomplete", profile: "p", state: .incomplete, files: 2, bytes: 1 << 20,
                error: "no DONE marker yet", changedAt: t, updatedAt: t),
            .init(
                root: "/mnt/gopro", name: hostile, profile: "p", state: .uploading, files: 10, bytes: 4 << 20, uploadedBytes: 1 << 20,
                changedAt: t, updatedAt: t),
            .init(
                root: "/mnt/gopro", name: "2026-11-30-complete", profile: "p", state: .complete, files: 5, bytes: 2 << 30,
                uploadedBytes: 2 << 30, manifest: "s3://bucket/raw/_runs/20261201T213000Z-a1b2/gopro/manifest.json", changedAt: t,
                updatedAt: t),
            .init(
                root: "/mnt/mooring", name: "2026-12-01-failed", profile: "p", state: .failed, files: 1, bytes: 1 << 20,
                error: "S3 unreachable: connection refused", changedAt: t, updatedAt: t, nextAttemptAt: "2026-12-01T21:45:00Z"),
            .init(
                root: "/mnt/mooring", name: "2025-01-01-too-old", profile: "p", state: .tooOld, files: 1, bytes: 100, changedAt: t,
                updatedAt: t),
        ]
        return StatusBoard(status)
    }

    static func start(_ board: StatusBoard, on listen: String = "127.0.0.1:0", any: Bool = false) async throws -> StatusServer {
        try await StatusServer.start(listen: listen, allowAnyAddress: any, board: board, console: Console(verbosity: .quiet))
    }

    /// Runs `body` against a server of its own, stopped afterwards whatever happens.
    static func serving(
        _ board: StatusBoard, on listen: String = "127.0.0.1:0", any: Bool = false, _ body: (StatusServer) async throws -> Void
    ) async throws {
        let server = try await start(board, on: listen, any: any)
        do {
            try await body(server)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test func thePageNamesEverySessionAndStateAndEscapesNames() async throws {
        let board = Self.board()
        try await Self.serving(board) { server in
            #expect(server.port > 0 && server.url == "http://127.0.0.1:\(server.port)/")

            let page = try await HTTPFetch.get("127.0.0.1", server.port, "/")
            #expect(page.status == 200)
            #expect(page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(page.headers["content-security-policy"]?.contains("default-src 'none'") == true)
            #expect(page.headers["cache-control"] == "no-store")
            #expect(page.body.contains("<meta http-equiv=\"refresh\" content=\"10\">"))
            for session in board.snapshot.sessions where session.name != Self.hostile {
                #expect(page.body.contains(session.name))
            }
            for state in WatchStatus.State.allCases {
                #expect(page.body.contains("state-\(state.rawValue)\""), "no badge for \(state)")
                #expect(page.body.contains(StatusPage.label(state)))
            }
            #expect(page.body.contains("card-&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&apos;"))
            #expect(!page.body.contains("<script"))
            #expect(page.body.contains("s3://bucket/raw/_runs/20261201T213000Z-a1b2/gopro/manifest.json"))
            #expect(page.body.contains("S3 unreachable: connection refused") && page.body.contains("2026-12-01T21:45:00Z"))
            #expect(page.body.contains("width:25%"), "the uploading session's bar shows 1 of 4 MiB")
            #expect(page.body.contains(ByteSize.format(7 << 20)) && page.body.contains(ByteSize.format(3 << 30)))
            // Devices: each root with its sessions and pending bytes (complete and too old are not pending).
            let text = page.body.replacing(/<[^>]+>/, with: " ").split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(text.contains("/mnt/drone 2 1 waiting for stability, 1 incomplete 2.0 MiB"))
            #expect(text.contains("/mnt/gopro 2 1 uploading, 1 complete 4.0 MiB"))
            #expect(text.contains("/mnt/mooring 2 1 failed, 1 too old 1.0 MiB"))
        }
    }

    @Test func controlCharactersAndBidiOverridesAreShownNotObeyed() {
        #expect(StatusPage.escape("a\u{202E}gpj.exe\nb<") == "a\\u{202e}gpj.exe\\nb&lt;")
    }

    @Test func statusJSONIsTheSnapshotWithItsTotals() async throws {
        let board = Self.board()
        try await Self.serving(board) { server in
            let doc = try await HTTPFetch.get("127.0.0.1", server.port, "/status.json")
            #expect(doc.status == 200 && doc.headers["content-type"] == "application/json")
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            #expect(try decoder.decode(WatchStatus.self, from: Data(doc.body.utf8)) == board.snapshot)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(doc.body.utf8)) as? [String: Any])
            #expect(object["queue_size"] as? Int == 2)
            let byState = try #require(object["sessions_by_state"] as? [String: Int])
            #expect(byState == Dictionary(uniqueKeysWithValues: WatchStatus.State.allCases.map { ($0.rawValue, 1) }))
            #expect(object["last_success_epoch"] as? Double == 1_796_247_000)
            #expect(!doc.body.contains("null"), "nil fields are left out")
            #expect(doc.body.contains("\"next_attempt_at\""))
        }
    }

    @Test func metricsAreWellFormedPrometheusText() async throws {
        let board = Self.board()
        try await Self.serving(board) { server in
            let metrics = try await HTTPFetch.get("127.0.0.1", server.port, "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            let samples = try PrometheusText.parse(metrics.body)
            #expect(samples.types["ceti_watch_uploaded_bytes_total"] == "counter")
            #expect(samples.value("ceti_watch_uploaded_bytes_total") == Double(3 << 30))
            #expect(samples.value("ceti_watch_queue_size") == 2)
            #expect(samples.value("ceti_watch_pending_bytes") == Double(7 << 20))
            #expect(samples.value("ceti_watch_last_success_timestamp_seconds") == 1_796_247_000)
            let perState = samples.lines.filter { $0.name == "ceti_watch_sessions" }
            #expect(Set(perState.map(\.labels)) == Set(WatchStatus.State.allCases.map { "state=\"\($0.rawValue)\"" }))
            #expect(perState.map(\.value).reduce(0, +) == Double(board.snapshot.sessions.count))
        }
    }

    @Test func anEmptyBoardHasEveryFamilyAndNoSuccessYet() throws {
        let empty = WatchStatus(version: Ceti.version, startedAt: "2026-12-01T20:00:00Z")
        let samples = try PrometheusText.parse(StatusServer.metrics(empty))
        #expect(samples.value("ceti_watch_last_success_timestamp_seconds") == 0)
        #expect(samples.lines.filter { $0.name == "ceti_watch_sessions" }.count == WatchStatus.State.allCases.count)
        #expect(StatusPage.html(empty).contains("No sessions yet."))
    }

    @Test func otherPathsAre404AndOtherMethods405() async throws {
        try await Self.serving(Self.board()) { server in
            #expect(try await HTTPFetch.get("127.0.0.1", server.port, "/nope").status == 404)
            #expect(try await HTTPFetch.get("127.0.0.1", server.port, "/status.json/x").status == 404)
            let post = try await HTTPFetch.get("127.0.0.1", server.port, "/metrics", method: "POST")
            #expect(post.status == 405 && post.headers["allow"] == "GET")
        }
    }

    @Test func aBoardUpdateShowsOnTheNextFetch() async throws {
        let board = Self.board()
        try await Self.serving(board) { server in
            board.update { status in
                status.sessions[0].state = .complete
                status.sessions[0].manifest = "s3://bucket/raw/_runs/NEW/drone/manifest.json"
                status.uploadedBytes += 1 << 20
            }
            #expect(try await HTTPFetch.get("127.0.0.1", server.port, "/").body.contains("s3://bucket/raw/_runs/NEW/drone/manifest.json"))
            let samples = try PrometheusText.parse(try await HTTPFetch.get("127.0.0.1", server.port, "/metrics").body)
            #expect(samples.value("ceti_watch_uploaded_bytes_total") == Double((3 << 30) + (1 << 20)))
            #expect(samples.value("ceti_watch_sessions", labels: "state=\"waiting\"") == 0)
            #expect(samples.value("ceti_watch_sessions", labels: "state=\"complete\"") == 2)
        }
    }

    @Test func nonLoopbackAddressesNeedStatusListenAny() async throws {
        for listen in ["0.0.0.0:0", "10.1.2.3:0", "[::]:0", "example.org:8080", "128.0.0.1:0"] {
            let error = await #expect(throws: UsageError.self) { try await Self.start(Self.board(), on: listen) }
            #expect(error?.description.contains("--status-listen-any") == true, "\(listen): \(error.map { "\($0)" } ?? "")")
        }
        // With the flag the wildcard is served (and reached here over loopback).
        try await Self.serving(Self.board(), on: "0.0.0.0:0", any: true) { any in
            let metrics = try await HTTPFetch.get("127.0.0.1", any.port, "/metrics")
            #expect(metrics.status == 200)
        }
    }

    @Test func listenAddressesParseOrSayTheForm() throws {
        #expect(try StatusServer.parse("127.0.0.1:8080") == ("127.0.0.1", 8080))
        #expect(try StatusServer.parse("[::1]:0") == ("::1", 0))
        #expect(try StatusServer.parse("localhost:65535") == ("localhost", 65535))
        for bad in [
            "8080", "localhost", ":8080", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+80", "[::1]8080", "[::1", "[]:80",
        ] {
            #expect(throws: UsageError.self, "\(bad)") { try StatusServer.parse(bad) }
        }
        let error = #expect(throws: UsageError.self) { try StatusServer.parse("::1:8080") }
        #expect(error?.description.contains("[::1]:8080") == true)
    }

    @Test func loopbackIsTheLoopbackRangeAndLocalhostOnly() {
        for host in ["127.0.0.1", "127.8.9.10", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "localhost", "LOCALHOST"] {
            #expect(StatusServer.isLoopback(host), "\(host)")
        }
        for host in [
            "0.0.0.0", "10.1.2.3", "::", "128.0.0.1", "::ffff:10.0.0.1", "example.org", "localhost.example.org", "127.0.0.1.nip.io",
        ] {
            #expect(!StatusServer.isLoopback(host), "\(host)")
        }
    }

    @Test(.enabled(if: HTTPFetch.canBind("::1"), "this machine has no IPv6 loopback"))
    func ipv6LoopbackIsServed() async throws {
        try await Self.serving(Self.board(), on: "[::1]:0") { server in
            #expect(server.url == "http://[::1]:\(server.port)/")
            let doc = try await HTTPFetch.get("::1", server.port, "/status.json")
            #expect(doc.status == 200)
        }
    }

    @Test(.enabled(if: HTTPFetch.resolves("localhost"), "localhost does not resolve here"))
    func localhostIsServed() async throws {
        try await Self.serving(Self.board(), on: "localhost:0") { server in
            let page = try await HTTPFetch.get("localhost", server.port, "/")
            #expect(page.status == 200)
        }
    }

    @Test func aPortInUseIsOneLineNamingTheAddressAndStopFreesIt() async throws {
        let first = try await Self.start(Self.board())
        let listen = "127.0.0.1:\(first.port)"
        let error = await #expect(throws: UsageError.self) { try await Self.start(Self.board(), on: listen) }
        let said = error?.description ?? ""
        #expect(said.contains(listen) && said.contains("Address already in use") && !said.contains("\n"), "\(said)")

        await first.stop()
        #expect(throws: (any Error).self) { try HTTPFetch.blockingGet("127.0.0.1", first.port, "/") }
        let again = try await Self.start(Self.board(), on: listen)
        #expect(again.port == first.port)
        #expect(try await HTTPFetch.get("127.0.0.1", again.port, "/metrics").status == 200)
        await again.stop()
    }

    /// A browser keeping its connection, or a client that never finishes its request, must not
    /// hold the watcher's exit.
    @Test func stopIsPromptWithIdleAndStalledClients() async throws {
        let server = try await Self.start(Self.board())
        let idle = try HTTPFetch.open("127.0.0.1", server.port, sending: "")
        let stalled = try HTTPFetch.open("127.0.0.1", server.port, sending: "GET / HTTP/1.1\r\nHost: x\r\n")
        defer {
            close(idle)
            close(stalled)
        }
        let started = ContinuousClock.now
        await server.stop()
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(throws: (any Error).self) { try HTTPFetch.blockingGet("127.0.0.1", server.port, "/") }
    }
}

/// A minimal HTTP/1.1 client over a blocking socket, on threads of its own (never the
/// cooperative pool the server's handlers run on): what a browser or curl sends, nothing more.
enum HTTPFetch {
    struct Reply: Sendable {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    static let threads = BlockingPool(threads: 4, name: "status-fetch")

    static func get(_ host: String, _ port: Int, _ path: String, method: String = "GET") async throws -> Reply {
        try await threads.run { try blockingGet(host, port, path, method: method) }
    }

    static func blockingGet(_ host: String, _ port: Int, _ path: String, method: String = "GET") throws -> Reply {
        let fd = try open(
            host, port, sending: "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw StatusTestFailure(description: "recv: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            bytes += buffer[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw StatusTestFailure(description: "no HTTP head in \(text.prefix(200))") }
        let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusLine = head[0].split(separator: " ")
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let status = Int(statusLine[1]) else {
            throw StatusTestFailure(description: "bad status line \(head[0])")
        }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let body = String(text[split.upperBound...])
        if let length = headers["content-length"].flatMap(Int.init) {
            guard body.utf8.count == length else {
                throw StatusTestFailure(description: "body of \(body.utf8.count) bytes, Content-Length \(length)")
            }
        }
        return Reply(status: status, headers: headers, body: body)
    }

    /// What getaddrinfo gives for `host`: family, type, protocol and the sockaddr's bytes.
    private static func addresses(_ host: String, _ port: Int, passive: Bool = false) -> [(
        family: Int32, type: Int32, proto: Int32, address: [UInt8]
    )] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = passive ? AI_PASSIVE : 0
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, "\(port)", &hints, &list) == 0 else { return [] }
        defer { freeaddrinfo(list) }
        return sequence(first: list, next: { $0?.pointee.ai_next }).compactMap { $0?.pointee }.map { a in
            (a.ai_family, a.ai_socktype, a.ai_protocol, Array(UnsafeRawBufferPointer(start: a.ai_addr, count: Int(a.ai_addrlen))))
        }
    }

    /// A socket of `a`'s kind, after `call` (connect or bind) succeeded on it; else nil.
    private static func socket(
        _ a: (family: Int32, type: Int32, proto: Int32, address: [UInt8]), _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32
    ) -> Int32? {
        let fd = Glibc.socket(a.family, a.type, a.proto)
        guard fd >= 0 else { return nil }
        let ok = a.address.withUnsafeBytes { call(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) == 0 }
        if ok { return fd }
        let saved = errno
        close(fd)
        errno = saved
        return nil
    }

    /// A connection that sends `text` and then nothing more (the caller closes it).
    static func open(_ host: String, _ port: Int, sending text: String) throws -> Int32 {
        let fd = try connect(host, port)
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else {
            close(fd)
            throw StatusTestFailure(description: "send: \(String(cString: strerror(errno)))")
        }
        return fd
    }

    private static func connect(_ host: String, _ port: Int) throws -> Int32 {
        var last = "does not resolve"
        for a in addresses(host, port) {
            if let fd = socket(a, { Glibc.connect($0, $1, $2) }) { return fd }
            last = String(cString: strerror(errno))
        }
        throw StatusTestFailure(description: "\(host):\(port): \(last)")
    }

    /// Whether a listening socket can be made on `host` (an IPv6 loopback may be missing).
    static func canBind(_ host: String) -> Bool {
        addresses(host, 0, passive: true).contains { a in
            socket(a, { Glibc.bind($0, $1, $2) }).map { close($0) } != nil
        }
    }

    static func resolves(_ host: String) -> Bool { !addresses(host, 0).isEmpty }
}

struct StatusTestFailure: Error, CustomStringConvertible {
    var description: String
}

/// Prometheus text format 0.0.4, as a scraper reads it: `# HELP`/`# TYPE` comments, and every
/// other line `name{labels} value`.
struct PrometheusText {
    struct Sample {
        var name: String
        var labels: String
        var value: Double
    }

    var lines: [Sample] = []
    var types: [String: String] = [:]

    static func parse(_ text: String) throws -> PrometheusText {
        var parsed = PrometheusText()
        guard text.hasSuffix("\n") else { throw StatusTestFailure(description: "no final newline") }
        let sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (\S+)$/
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                    throw StatusTestFailure(description: "bad TYPE line: \(line)")
                }
                parsed.types[String(parts[2])] = String(parts[3])
            } else if line.hasPrefix("#") {
                continue
            } else {
                guard let m = line.wholeMatch(of: sample), let value = Double(m.output.3) else {
                    throw StatusTestFailure(description: "not a sample: \(line)")
                }
                guard parsed.types[String(m.output.1)] != nil else { throw StatusTestFailure(description: "no TYPE before \(line)") }
                parsed.lines.append(Sample(name: String(m.output.1), labels: m.output.2.map(String.init) ?? "", value: value))
            }
        }
        return parsed
    }

    func value(_ name: String, labels: String = "") -> Double? {
        lines.first { $0.name == name && $0.labels == labels }?.value
    }
}
