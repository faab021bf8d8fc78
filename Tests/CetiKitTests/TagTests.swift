import Foundation
import Testing

@testable import CetiKit

@Suite struct TagTests {
    @Test func shellQuoting() {
        #expect(SSHSession.quote("plain") == "'plain'")
        #expect(SSHSession.quote("x; touch pwned") == "'x; touch pwned'")
        #expect(SSHSession.quote("it's") == "'it'\\''s'")
        #expect(SSHSession.quote("$(id) `w`") == "'$(id) `w`'")
    }

    @Test func sha256sumLines() {
        let h = String(repeating: "ab", count: 32)
        func parse(_ line: String) -> [String]? {
            RemoteChecksums.parse(Array(line.utf8)).map { [$0.0, NameCodec.encode($0.1)] }
        }
        #expect(parse("\(h)  name with spaces.csv") == [h, "name with spaces.csv"])
        #expect(parse("\(h) *binary.raw") == [h, "binary.raw"])
        // GNU coreutils escapes names holding a backslash or newline and marks the line with '\'.
        #expect(parse("\\\(h)  new\\nline\\\\x") == [h, "new%0Aline\\x"])
        #expect(parse("sha256sum: missing: No such file or directory") == nil)
        #expect(parse("\(h.prefix(63))  short") == nil)
        // Bytes that are not UTF-8 come back as they are, in name form.
        #expect(RemoteChecksums.parse(Array("\(h)  ".utf8) + [0xFF, 0x2E]).map { NameCodec.encode($0.1) } == "%FF.")
    }

    @Test func nameForm() {
        #expect(NameCodec.encode(Array("1700000000000.raw".utf8)) == "1700000000000.raw")
        #expect(NameCodec.encode(Array("50%.csv".utf8)) == "50%.csv")
        #expect(NameCodec.encode([0xFF, 0xFE, 0x20, 0x61]) == "%FF%FE a")
        #expect(NameCodec.encode(Array("a%41".utf8)) == "a%2541")
        #expect(NameCodec.encode(Array("é\n".utf8)) == "é%0A")
        #expect(NameCodec.encode(Array("a\u{1b}[1m\u{85}".utf8)) == "a%1B[1m%C2%85")
        for name: [UInt8] in [
            [0xFF], Array("a%41".utf8), Array("a%2541".utf8), [0x25, 0x46, 0x46], Array("50%".utf8), [0xC3], [0xE2, 0x82],
        ] {
            #expect(NameCodec.decode(NameCodec.encode(name)) == name)
        }
        #expect("a\u{1b}[31m\r".printable == "a\\u{1b}[31m\\r")
        #expect(NameCodec.partialName(for: String(repeating: "x", count: 255)).utf8.count < 40)
    }

    @Test func knownHostsPinsPerName() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-kh-\(UUID())/known_hosts").path
        let kh = KnownHosts(path: path)
        #expect(kh.verdict(name: "wt-1a2b3c4d", type: "ssh-ed25519", key: "AAAA") == .new)
        try kh.pin(name: "wt-1a2b3c4d", type: "ssh-ed25519", key: "AAAA")
        try kh.pin(name: "wt-b827eb1a2b3c", type: "ssh-ed25519", key: "BBBB")
        #expect(kh.verdict(name: "wt-1a2b3c4d", type: "ssh-ed25519", key: "AAAA") == .trusted)
        guard case .changed(let fp) = kh.verdict(name: "wt-1a2b3c4d", type: "ssh-ed25519", key: "CCCC") else {
            Issue.record("a different key must be reported as changed")
            return
        }
        #expect(fp.hasPrefix("SHA256:"))
        #expect(kh.name(forKey: "BBBB") == "wt-b827eb1a2b3c")
        // Re-pinning replaces the line, it does not add a second one.
        try kh.pin(name: "wt-1a2b3c4d", type: "ssh-ed25519", key: "CCCC")
        #expect(kh.verdict(name: "wt-1a2b3c4d", type: "ssh-ed25519", key: "CCCC") == .trusted)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.split(separator: "\n").count == 2)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func tagPassword() throws {
        #expect(try TagPassword.resolve(file: nil, environment: [:]) == "ceticeti")
        #expect(try TagPassword.resolve(file: nil, environment: ["CETI_TAG_PASSWORD": "s3cret"]) == "s3cret")
        let f = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-pw-\(UUID())").path
        try "from-file\nignored\n".write(toFile: f, atomically: true, encoding: .utf8)
        #expect(try TagPassword.resolve(file: f, environment: ["CETI_TAG_PASSWORD": "s3cret"]) == "from-file")
        #expect(throws: UsageError.self) { try TagPassword.resolve(file: f + ".missing", environment: [:]) }
    }

    @Test func ledgerCopies() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-copies-\(UUID())/l.sqlite").path
        let ledger = try Ledger(path: path)
        let c = CopyRecord(
            device: "wt-1a2b3c4d", remotePath: "/data/1.raw", size: 10, mtime: 100, sha256: "aa",
            localPath: "/d/wt-1a2b3c4d/1.raw", remoteVerified: true, verifiedAt: "t")
        try ledger.recordCopy(c)
        #expect(try ledger.copy(device: "wt-1a2b3c4d", remotePath: "/data/1.raw", size: 10, mtime: 100) == c)
        // Another size or mtime is another file (the tag reused the name).
        #expect(try ledger.copy(device: "wt-1a2b3c4d", remotePath: "/data/1.raw", size: 11, mtime: 100) == nil)
        #expect(try ledger.copy(device: "wt-1a2b3c4d", remotePath: "/data/1.raw", size: 10, mtime: 101) == nil)
        // A second copy of the same file (backup and staging) still counts as one file pulled.
        var staged = c
        staged.localPath = "/s/wt-1a2b3c4d/1.raw"
        try ledger.recordCopy(staged)
        let status = try #require(try ledger.status().first)
        #expect(status.device == "wt-1a2b3c4d" && status.pulledFiles == 1 && status.pulledBytes == 10)
    }
}

@Suite struct PCMTests {
    func decode(_ bytes: [UInt8], _ f: RawFormat) -> ([Int32], [UInt8]) {
        var s = [Int32](repeating: 0, count: bytes.count / f.bytesPerSample)
        var le = [UInt8](repeating: 0, count: bytes.count)
        bytes.withUnsafeBytes { PCM.decode($0, format: f, into: &s, littleEndian: &le) }
        return (s, le)
    }

    @Test func layouts() {
        var f = RawFormat(channels: 1, bitsPerSample: 16, sampleRate: 8000, bigEndian: true, signed: true)
        #expect(decode([0x80, 0x00, 0x00, 0x01, 0xFF, 0xFE], f).0 == [-32768, 1, -2])
        #expect(decode([0x80, 0x00, 0x00, 0x01], f).1 == [0x00, 0x80, 0x01, 0x00])
        f.bigEndian = false
        #expect(decode([0x00, 0x80, 0x01, 0x00], f).0 == [-32768, 1])
        f.signed = false  // unsigned 16-bit: 0x8000 is silence
        #expect(decode([0x00, 0x80, 0x00, 0x00], f).0 == [0, -32768])
        f = RawFormat(channels: 1, bitsPerSample: 24, sampleRate: 8000, bigEndian: true, signed: true)
        let (s, le) = decode([0xFF, 0xFF, 0xFE, 0x7F, 0xFF, 0xFF], f)
        #expect(s == [-2, 8_388_607])
        #expect(le == [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        f.bigEndian = false
        #expect(decode([0x00, 0x00, 0x80], f).0 == [-8_388_608])
        f = RawFormat(channels: 1, bitsPerSample: 8, sampleRate: 8000, bigEndian: false, signed: false)
        #expect(decode([0x80, 0x00, 0xFF], f).0 == [0, -128, 127])
    }
}

@Suite struct PrintableTests {
    @Test func controlCharactersAreEscaped() {
        #expect("plain é 鯨.csv".printable == "plain é 鯨.csv")
        #expect("new\nline\t\u{1b}[2J".printable == "new\\nline\\t\\u{1b}[2J")
    }
}
