import Foundation
import Testing

@testable import CetiKit

/// The config file's typed accessors and the ledger's check on open.
@Suite struct ConfigAndLedgerCheckTests {
    let cfgPath = "/etc/ceti/config.yaml"

    func config(_ text: String, home: String = "/home/op") throws -> ConfigFile {
        var c = try ConfigFile.parse(text, path: cfgPath)
        c.home = home
        return c
    }

    /// The description of what `body` throws (nil when it throws nothing).
    func message(_ body: () throws -> Void) -> String? {
        do { try body() } catch { return "\(error)" }
        return nil
    }

    // MARK: - ConfigFile

    @Test func typedValuesAsWritten() throws {
        let c = try config(
            """
            bucket: ceti-field-data
            prefix: 2020
            jobs: 8
            region:
            ledger: ~/ceti/ledger.sqlite
            """)
        #expect(try c.string("bucket") == "ceti-field-data")
        #expect(try c.string("prefix") == "2020")  // as written, not a number re-printed
        #expect(try c.int("jobs") == 8)
        #expect(try c.string("region") == nil)  // `key:` with nothing is absent
        #expect(try c.string("profile") == nil)
        #expect(try c.int("part_size") == nil)
        #expect(try c.path("ledger") == "/home/op/ceti/ledger.sqlite")
        #expect(c["ledger"] == "/home/op/ceti/ledger.sqlite")  // what Ledger.resolvePath reads
        #expect(c.lines["jobs"] == 3)
    }

    @Test func tildeExpansion() throws {
        let c = ConfigFile(values: ["ledger": "~", "a": "~/x/y", "b": "~op/x", "c": "/abs/~/x", "d": "rel/x"], home: "/h/")
        #expect(try c.path("ledger") == "/h")
        #expect(try c.path("a") == "/h/x/y")
        #expect(try c.path("b") == "~op/x")
        #expect(try c.path("c") == "/abs/~/x")
        #expect(try c.path("d") == "rel/x")
        #expect(try c.string("a") == "~/x/y")  // only paths are expanded
    }

    @Test func homeComesFromTheEnvironment() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-cfg-\(UUID())")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("ceti"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "ledger: ~/l.sqlite\n".write(to: dir.appendingPathComponent("ceti/config.yaml"), atomically: true, encoding: .utf8)
        let c = try ConfigFile.load(explicit: nil, environment: ["XDG_CONFIG_HOME": dir.path, "HOME": "/home/field"])
        #expect(try c.path("ledger") == "/home/field/l.sqlite")
        #expect(Ledger.resolvePath(flag: nil, environment: ["HOME": "/home/field"], config: c) == "/home/field/l.sqlite")
    }

    @Test func wrongTypeNamesFileLineAndKey() throws {
        // Checked when the file is read: no command runs on a value it would misread.
        let jobs = message { _ = try config("bucket: b\njobs: four\n") }
        #expect(jobs == "config file \(cfgPath), line 2: jobs: four is not a number; give a whole number, e.g. `jobs: 4`")
        let list = message { _ = try config("bucket: [a, b]\n") }
        #expect(list == "config file \(cfgPath), line 1: bucket: expected a single value, found a list")
        let map = message { _ = try config("region:\n  eu: 1\n") }
        #expect(map == "config file \(cfgPath), line 1: region: expected a single value, found a mapping")
        #expect(throws: ConfigFile.ConfigError.self) { _ = try config("jobs: 4.5\n") }
        #expect(throws: ConfigFile.ConfigError.self) { _ = try config("ledger: [x]\n") }
        let unknown = message { _ = try config("bucket: b\nbuket: c\n") }
        #expect(unknown?.contains("unknown key 'buket'") == true && unknown?.contains("line 2") == true)
        #expect(Ceti.exitStatus(for: ConfigFile.ConfigError.value(path: "p", line: 1, key: "jobs", message: "m")) == 2)
    }

    @Test func accessorsThrowOnValuesBuiltInCode() throws {
        let c = ConfigFile(values: ["jobs": "many", "flag": "yes", "off": "Off", "bad": "maybe"], path: cfgPath)
        #expect(throws: ConfigFile.ConfigError.self) { _ = try c.int("jobs") }
        #expect(try c.bool("flag") == true)
        #expect(try c.bool("off") == false)
        #expect(try c.bool("absent") == nil)
        let bad = message { _ = try c.bool("bad") }
        #expect(bad == "config file \(cfgPath): bad: maybe is not true or false; give `bad: true` or `bad: false`")
        // A caller's own check names the file and the key, not a flag.
        let range = "\(c.invalid("jobs", "99 is out of range; give a number from 1 to 64"))"
        #expect(range == "config file \(cfgPath): jobs: 99 is out of range; give a number from 1 to 64")
        #expect(!range.contains("--"))
    }

    @Test func emptyAndMissingFiles() throws {
        #expect(try config("").values.isEmpty)
        #expect(try config("# only a comment\n").values.isEmpty)
        #expect(throws: ConfigFile.ConfigError.self) { _ = try config("- a\n- b\n") }
        #expect(throws: ConfigFile.ConfigError.self) { _ = try ConfigFile.load(explicit: "/nonexistent/c.yaml", environment: [:]) }
    }

    @Test func s3SettingsReportTheFilesValues() throws {
        let c = try config("bucket: b\nendpoint_url: not-a-url\n")
        let m = message {
            _ = try S3Settings.resolve(.init(), environment: ["AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"], config: c)
        }
        #expect(m == "config file \(cfgPath), line 2: endpoint_url: not-a-url is not an http:// or https:// URL with a host")
    }

    // MARK: - The ledger's check on open

    func tempPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("ceti-check-\(UUID())/l.sqlite").path
    }

    func recorded(_ path: String, rows: Int = 200) throws {
        let ledger = try Ledger(path: path)
        try ledger.insertNewFiles(
            (0..<rows).map {
                FileRecord(
                    path: "/data/wt-a/file\($0).flac", fingerprint: FileFingerprint(size: 100, mtimeNanoseconds: 1, inode: UInt64($0)),
                    sha256: nil, plannedDate: "2026-01-01")
            })
        // Everything into the main file, so that damage to it is what the next open sees.
        try ledger.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    func overwrite(_ path: String, at offset: UInt64, count: Int) throws {
        let h = try #require(FileHandle(forUpdatingAtPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: offset)
        h.write(Data(repeating: 0x5a, count: count))
    }

    func expectDamaged(_ path: String) {
        for open in [{ _ = try Ledger(path: path) }, { _ = try Ledger(readOnlyPath: path) }] as [() throws -> Void] {
            do {
                try open()
                Issue.record("a damaged ledger opened")
            } catch let e as SQLiteError {
                guard case .damaged = e else { Issue.record("not .damaged: \(e)"); continue }
                let text = e.description
                #expect(text.contains(path) && text.contains("mv ") && text.contains(".damaged"))
                #expect(!text.contains("\n"))
                for sql in ["PRAGMA", "SELECT", "INSERT", "CREATE", "journal_mode"] { #expect(!text.contains(sql)) }
                #expect(Ceti.exitStatus(for: e) == 1)
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
    }

    @Test func garbageIsRefused() throws {
        let path = tempPath()
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 13) })
        try garbage.write(to: URL(fileURLWithPath: path))
        expectDamaged(path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == garbage)  // not touched
    }

    @Test func aCorruptedPageIsRefused() throws {
        let path = tempPath()
        try recorded(path)
        _ = try Ledger(path: path)  // sound: opens
        try overwrite(path, at: 4096 + 0, count: 16)  // page 2's header
        expectDamaged(path)
    }

    @Test func soundAndEmptyLedgersOpen() throws {
        let path = tempPath()
        try recorded(path)
        _ = try Ledger(readOnlyPath: path)
        let empty = tempPath()
        try FileManager.default.createDirectory(atPath: (empty as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        _ = try Ledger(readOnlyPath: empty)
        _ = try Ledger(path: empty)
    }

    @Test func errorsNeverShowSQL() throws {
        let e = SQLiteError.statement(
            path: "/l.sqlite", code: SQLITE_BUSY_CODE, message: "database is locked",
            sql: "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL")
        #expect(!e.description.contains("PRAGMA") && e.description.contains("/l.sqlite") && e.description.contains("database is locked"))
        #expect(Ceti.exitStatus(for: e) == 1)
        let full = SQLiteError.statement(path: "/l.sqlite", code: 13, message: "database or disk is full", sql: "INSERT INTO files")
        #expect(!full.description.contains("INSERT") && full.description.contains("disk is full"))
        #expect(Ceti.exitStatus(for: full) == 1)
        let corrupt = SQLiteError.statement(path: "/l.sqlite", code: 11, message: "database disk image is malformed", sql: "SELECT 1")
        #expect(corrupt.isDamage && corrupt.description.contains("mv /l.sqlite /l.sqlite.damaged"))
        #expect(SQLiteError.shellWord("/a b/l'x") == "'/a b/l'\\''x'")
    }
}

private let SQLITE_BUSY_CODE: Int32 = 5
