import Foundation
import Testing

@testable import CetiKit

/// Notifications of `ceti watch`: the webhook's JSON against a real (tiny) HTTP receiver,
/// retries, kinds filtered by `on`, secrets kept out of the log, and the e-mail's headers.
@Suite struct NotifierTests {
    static let token = "T0A1B2C3/B0D4E5F6/s3cr3tT0kenXyZ"

    func event(_ kind: WatchEvent.Kind, session: String = "wt-0a1b/2026-12-01", manifest: String? = nil) -> WatchEvent {
        WatchEvent(
            event: kind, session: session, root: "/srv/incoming", files: 12, bytes: 1_288_490_188, manifest: manifest,
            errors: kind == .failed ? ["S3 refused the credentials"] : [], text: "ceti: \(kind.rawValue) \(session)", host: "boat-1",
            at: "2026-12-01T21:40:00Z")
    }

    /// A notifier whose retries are due at once, logging everything (-vv) to a fresh file.
    func notifier(_ settings: NotifySettings, giveUpAfter: Double = 3600) -> (Notifier, log: String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-notify-\(UUID()).log").path
        let console = Console(verbosity: .debug, logFile: log)
        return (Notifier(settings: settings, console: console, backoff: .init(first: 0, max: 0, giveUpAfter: giveUpAfter)), log)
    }

    func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    @Test func theWebhookGetsTheJSONWithEveryFieldAndText() async throws {
        let receiver = try Receiver(statuses: [200, 200])
        defer { receiver.stop() }
        let (notifier, _) = notifier(NotifySettings(webhook: receiver.url("/hooks/\(Self.token)")))
        await notifier.post(event(.complete, manifest: "s3://b/raw/_runs/r1/wt-0a1b/manifest.json"))
        await notifier.post(event(.failed))
        #expect(notifier.pending == 0)

        let requests = receiver.requests
        try #require(requests.count == 2)
        #expect(requests[0].path == "/hooks/\(Self.token)")
        #expect(requests[0].contentType == "application/json")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(requests[0].body.utf8)) as? [String: Any])
        #expect(Set(json.keys) == ["event", "session", "root", "files", "bytes", "manifest", "errors", "text", "host", "at"])
        #expect(json["event"] as? String == "complete" && json["session"] as? String == "wt-0a1b/2026-12-01")
        #expect(json["files"] as? Int == 12 && json["bytes"] as? Int == 1_288_490_188)
        #expect(json["manifest"] as? String == "s3://b/raw/_runs/r1/wt-0a1b/manifest.json")
        #expect(json["text"] as? String == "ceti: complete wt-0a1b/2026-12-01")
        // No manifest for a failure: the key is left out, not null.
        let failed = try #require(try JSONSerialization.jsonObject(with: Data(requests[1].body.utf8)) as? [String: Any])
        #expect(failed["manifest"] == nil && failed["errors"] as? [String] == ["S3 refused the credentials"])
    }

    @Test func aRefusedAnswerIsLoggedKeptAndDeliveredByTheRetry() async throws {
        let receiver = try Receiver(statuses: [500, 503, 200])
        defer { receiver.stop() }
        let (notifier, log) = notifier(NotifySettings(webhook: receiver.url("/hooks/\(Self.token)")))
        await notifier.post(event(.complete))
        #expect(notifier.pending == 1)
        #expect(
            read(log).contains("notification 'complete' for session wt-0a1b/2026-12-01 to webhook failed: the receiver answered HTTP 500"))

        await notifier.retryPending()
        #expect(notifier.pending == 1)
        await notifier.retryPending()
        #expect(notifier.pending == 0)
        #expect(read(log).contains("to webhook delivered on attempt 3"))
        let bodies = receiver.requests.map(\.body)
        #expect(bodies.count == 3 && Set(bodies).count == 1)
        #expect(!read(log).contains(Self.token) && !read(log).contains("/hooks"))
    }

    @Test func aRefusedConnectionIsLoggedWithoutTheURLOrThePasswordAndGivenUpLater() async throws {
        let closed = try Receiver(statuses: [])
        let port = closed.port
        closed.stop()
        let password = "pa55-W0rd-never-shown"
        var settings = NotifySettings(webhook: "http://hook-user:hook-pass@127.0.0.1:\(port)/hooks/\(Self.token)?key=q5ecret")
        settings.email = .init(
            smtpURL: "smtp://mail-user:url-pass@127.0.0.1:\(port)", from: "ceti@boat.example", to: ["ops@example.org"], user: "ceti",
            password: password)
        let (notifier, log) = notifier(settings, giveUpAfter: 0)
        await notifier.post(event(.failed))
        #expect(notifier.pending == 2)
        await notifier.retryPending()
        #expect(notifier.pending == 0)

        let text = read(log)
        #expect(text.contains("notification 'failed' for session wt-0a1b/2026-12-01 to webhook failed: "))
        #expect(text.contains("to e-mail to ops@example.org via smtp://127.0.0.1:\(port) failed: "))
        #expect(text.contains("gave up on notification 'failed' for session wt-0a1b/2026-12-01 to webhook after 2 attempt(s)"))
        for secret in [Self.token, "s3cr3t", "/hooks", "q5ecret", "hook-pass", "url-pass", "mail-user", password] {
            #expect(!text.contains(secret), "the log shows \(secret)")
        }
    }

    @Test func kindsNotInOnAreNotSentButTestAlwaysIs() async throws {
        let receiver = try Receiver(statuses: [200, 200])
        defer { receiver.stop() }
        var settings = NotifySettings(webhook: receiver.url("/hook"))
        settings.on = [.failed]
        let (notifier, _) = notifier(settings)
        await notifier.post(event(.complete))
        await notifier.post(event(.stalled))
        #expect(receiver.requests.isEmpty)
        await notifier.post(event(.failed))
        await notifier.post(Notifier.testEvent())
        #expect(receiver.requests.map { try? JSONDecoder().decode(Kind.self, from: Data($0.body.utf8)).event } == ["failed", "test"])
    }

    @Test func theTestReportsEachChannel() async throws {
        let receiver = try Receiver(statuses: [204])
        defer { receiver.stop() }
        let closed = try Receiver(statuses: [])
        let port = closed.port
        closed.stop()
        var settings = NotifySettings(webhook: receiver.url("/hook"))
        settings.email = .init(smtpURL: "smtps://u:p@127.0.0.1:\(port)/x", from: "a@b", to: ["c@d", "e@f"])
        let (notifier, _) = notifier(settings)
        let report = await notifier.test()
        #expect(report.channels.map(\.channel) == ["webhook", "e-mail to c@d, e@f via smtps://127.0.0.1:\(port)"])
        #expect(report.channels.map(\.delivered) == [true, false] && report.exitCode == 1)
        #expect(report.line.hasPrefix("webhook: delivered\ne-mail to c@d, e@f via smtps://127.0.0.1:\(port): failed: "))
        #expect(notifier.pending == 0)
    }

    @Test func theMailHasOneLineHeadersWhateverTheSessionName() throws {
        var e = event(.complete, session: "wt-1\r\nBcc: victim@example.org", manifest: "s3://b/m.json")
        e.text = "ceti: complete wt-1\r\nBcc: victim@example.org"
        let date = Date(timeIntervalSince1970: 1_796_161_200)  // 2026-12-01T21:40:00Z
        let message = String(
            decoding: NotifyMail.message(e, from: "ceti <ceti@boat.example>", to: ["a@b", "c@d"], date: date), as: UTF8.self)
        let parts = message.components(separatedBy: "\r\n\r\n")
        let headers = parts[0].components(separatedBy: "\r\n")
        #expect(headers.contains("Subject: ceti: complete wt-1  Bcc: victim@example.org"))
        #expect(!headers.contains { $0.hasPrefix("Bcc:") })
        #expect(headers.contains("Date: Tue, 01 Dec 2026 21:40:00 +0000"))
        #expect(headers.contains("To: a@b, c@d") && headers.contains("From: ceti <ceti@boat.example>"))
        #expect(headers.contains { $0.hasPrefix("Message-ID: <") && $0.hasSuffix(".ceti@boat.example>") })
        #expect(headers.contains("Content-Type: text/plain; charset=utf-8") && headers.contains("MIME-Version: 1.0"))
        let body = parts.dropFirst().joined(separator: "\r\n\r\n")
        #expect(body.contains("session:  wt-1\\r\\nBcc: victim@example.org\r\n"))
        #expect(body.contains("bytes:    1.2 GiB (1288490188 bytes)") && body.contains("manifest: s3://b/m.json"))
        #expect(body.contains("host:     boat-1") && body.contains("time:     2026-12-01T21:40:00Z"))
        #expect(NotifyCurl.envelope("ceti <ceti@boat.example>") == "<ceti@boat.example>")
    }

    @Test func nonASCIIGoesEncodedInTheSubjectAndTheBody() {
        let subject = "ceti: complete Dominica-Ñ/" + String(repeating: "é", count: 40)
        let encoded = NotifyMail.encodedWords(subject)
        let words = encoded.components(separatedBy: "\r\n ")
        #expect(words.count > 1 && words.allSatisfy { $0.hasPrefix("=?utf-8?B?") && $0.hasSuffix("?=") && $0.count <= 75 })
        let decoded = words.map { String(decoding: Data(base64Encoded: String($0.dropFirst(10).dropLast(2)))!, as: UTF8.self) }
        #expect(decoded.allSatisfy { !$0.contains("\u{FFFD}") } && decoded.joined() == subject)
        #expect(NotifyMail.encodedWords("plain ascii") == "plain ascii")

        // A body that is not ASCII goes as base64, which any mail reader decodes.
        let message = String(decoding: NotifyMail.message(event(.complete, session: "Dominica-Ñ"), from: "a@b", to: ["c@d"]), as: UTF8.self)
        let parts = message.components(separatedBy: "\r\n\r\n")
        #expect(parts[0].contains("Content-Transfer-Encoding: base64"))
        let body = Data(base64Encoded: parts[1].replacingOccurrences(of: "\r\n", with: "")).map { String(decoding: $0, as: UTF8.self) }
        #expect(body?.contains("session:  Dominica-Ñ\r\n") == true)
    }

    private struct Kind: Decodable { var event: String }
}

/// A one-thread HTTP/1.1 receiver on 127.0.0.1: answers each request with the next of `statuses`
/// (200 once they run out) and closes the connection.
final class Receiver: @unchecked Sendable {
    struct Request: Sendable {
        var path: String
        var contentType: String?
        var body: String
    }

    let port: Int
    private let fd: Int32
    private let received = Locked<[Request]>([])
    private let done = DispatchSemaphore(value: 0)

    var requests: [Request] { received.value }
    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    init(statuses: [Int]) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(listener, p, length) == 0 && listen(listener, 8) == 0 && getsockname(listener, p, &length) == 0
            }
        }
        guard listener >= 0, bound else { throw POSIXError(.EADDRNOTAVAIL) }
        fd = listener
        port = Int(UInt16(bigEndian: address.sin_port))
        let (received, done) = (received, done)
        Thread {
            var statuses = statuses[...]
            while case let client = accept(listener, nil, nil), client >= 0 {
                if let request = Self.read(client) {
                    received.update { $0.append(request) }
                    let status = statuses.popFirst() ?? 200
                    _ = "HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".withCString {
                        send(client, $0, strlen($0), 0)
                    }
                }
                close(client)
            }
            done.signal()
        }.start()
    }

    /// Stops accepting (shutdown wakes the blocked accept) and waits for the thread.
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        done.wait()
    }

    private static func read(_ client: Int32) -> Request? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        func headerEnd() -> Int? {
            guard data.count >= 4 else { return nil }
            return (0...(data.count - 4)).first { data[$0..<$0 + 4] == [13, 10, 13, 10] }
        }
        while headerEnd() == nil {
            let n = recv(client, &buffer, buffer.count, 0)
            guard n > 0 else { return nil }
            data += buffer[..<n]
        }
        let end = headerEnd()!
        let lines = String(decoding: data[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        func header(_ name: String) -> String? {
            lines.dropFirst().first { $0.lowercased().hasPrefix(name + ":") }.map {
                $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)
            }
        }
        let length = Int(header("content-length") ?? "0") ?? 0
        while data.count < end + 4 + length {
            let n = recv(client, &buffer, buffer.count, 0)
            guard n > 0 else { return nil }
            data += buffer[..<n]
        }
        let path = lines[0].split(separator: " ").dropFirst().first.map(String.init) ?? ""
        return Request(path: path, contentType: header("content-type"), body: String(decoding: data[(end + 4)...], as: UTF8.self))
    }
}
