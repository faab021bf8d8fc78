import Foundation
import Testing

@testable import CetiKit

/// The `watch:` section: what it reads, and every problem at once with its key and line.
@Suite struct WatchConfigTests {
    func load(_ yaml: String) throws -> WatchConfig {
        try WatchConfig.load(try ConfigFile.parse(yaml, path: "/etc/ceti.yaml"))
    }

    func problems(_ yaml: String) -> [WatchConfig.Problem] {
        do {
            _ = try load(yaml)
            return []
        } catch let e as WatchConfig.Invalid {
            return e.problems
        } catch {
            Issue.record("\(error)")
            return []
        }
    }

    @Test func durations() {
        #expect(WatchConfig.seconds("90s") == 90 && WatchConfig.seconds("5m") == 300 && WatchConfig.seconds("1h") == 3600)
        #expect(WatchConfig.seconds("30d") == 30 * 86_400 && WatchConfig.seconds("45") == 45 && WatchConfig.seconds("1.5m") == 90)
        #expect(WatchConfig.seconds("soon") == nil && WatchConfig.seconds("-5s") == nil && WatchConfig.seconds("") == nil)
    }

    @Test func aWholeSectionIsRead() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-watchcfg-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "https://hooks.example/T/secret\n".write(toFile: dir + "/hook", atomically: true, encoding: .utf8)
        try "pw\n".write(toFile: dir + "/pw", atomically: true, encoding: .utf8)
        let c = try load(
            """
            bucket: b
            watch:
              interval: 2m
              roots:
                - path: /srv/in/
                  profile: tag
                  prefix: lab
              profiles:
                tag:
                  session_depth: 2
                  required_markers: [done.json]
                  stable_for: 10s
                  ignore: ["*.tmp", ".*"]
                  include_regex: "^wt-"
                  compress: yes
                  after_upload: delete-local
                  max_age: 30d
              notify:
                webhook_file: \(dir)/hook
                email: {smtp_url: "smtps://mail.example:465", from: a@b, to: c@d, user: u, password_file: \(dir)/pw}
                on: [complete, stalled]
                stall_after: 1h
            """)
        #expect(c.intervalSeconds == 120)
        #expect(c.roots == [WatchConfig.Root(path: "/srv/in", profile: "tag", bucket: nil, prefix: "lab")])
        let p = try #require(c.profiles["tag"])
        #expect(p.sessionDepth == 2 && p.requiredMarkers == ["done.json"] && p.stableForSeconds == 10 && p.ignore == ["*.tmp", ".*"])
        #expect(p.includeRegex == "^wt-" && p.compress && p.afterUpload == .deleteLocal && p.maxAgeSeconds == 30 * 86_400)
        #expect(c.notify?.webhook == "https://hooks.example/T/secret" && c.notify?.on == [.complete, .stalled])
        #expect(
            c.notify?.email
                == NotifySettings.Email(smtpURL: "smtps://mail.example:465", from: "a@b", to: ["c@d"], user: "u", password: "pw"))
        #expect(c.notify?.stallAfterSeconds == 3600)
    }

    @Test func everyProblemIsNamedWithItsKeyAndLine() {
        let found = problems(
            """
            watch:
              interval: 0s
              roots:
                - {path: relative/dir, profile: p}
                - {path: /a, profile: q}
                - {path: /a, profile: p}
              profiles:
                p: {session_depth: 9, include_regex: "(", on: x}
              notify:
                webhook: hooks.example/secret-token
                email: {smtp_url: "imap://x", to: []}
              extra: 1
            """)
        let keys = Set(found.map(\.key))
        for key in [
            "watch.interval", "watch.roots[0].path", "watch.roots[1].profile", "watch.roots[2].path", "watch.profiles.p.session_depth",
            "watch.profiles.p.include_regex", "watch.profiles.p.on", "watch.notify.webhook", "watch.notify.email.smtp_url",
            "watch.notify.email.from", "watch.notify.email.to", "watch.extra",
        ] {
            #expect(keys.contains(key), "\(key) not in \(keys.sorted())")
        }
        #expect(found.first { $0.key == "watch.interval" }?.line == 2)
        #expect(found.first { $0.key == "watch.extra" }?.line == 12)
        // The webhook URL is a secret: its value is never quoted.
        #expect(!found.map(\.description).joined().contains("secret-token"))
        #expect(problems("bucket: b\n").map(\.key) == ["watch"])
        #expect(problems("watch:\n  profiles: {}\n").map(\.key) == ["watch.roots"])
    }
}
