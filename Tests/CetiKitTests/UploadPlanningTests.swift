import Foundation
import Testing

@testable import CetiKit

@Suite struct UploadPlanningTests {
    let fp = FileFingerprint(size: 10, mtimeNanoseconds: 1, inode: 2)

    @Test func defaultTemplateAndCollapsedSegments() throws {
        let t = try KeyTemplate(KeyTemplate.default)
        let f = LocalFile(path: "/d/wt-abc/sub/x.flac", device: "wt-abc", relativePath: "sub/x.flac", fingerprint: fp)
        #expect(t.key(prefix: "raw", date: "2026-11-22", file: f) == "raw/2026-11-22/wt-abc/sub/x.flac")
        #expect(t.key(prefix: "", date: "2026-11-22", file: f) == "2026-11-22/wt-abc/sub/x.flac")
        let named = try KeyTemplate("{device}/{name}")
        #expect(named.key(prefix: "p", date: "d", file: f) == "wt-abc/x.flac")
        // A value holding a placeholder's text is not expanded again.
        let odd = LocalFile(path: "/d/{date}/a", device: "{date}", relativePath: "a", fingerprint: fp)
        #expect(t.key(prefix: "raw", date: "D", file: odd) == "raw/D/{date}/a")
    }

    @Test func templateErrors() {
        #expect(throws: KeyTemplate.TemplateError.unknownPlaceholder("host")) { try KeyTemplate("{host}/{path}") }
        #expect(throws: KeyTemplate.TemplateError.unbalanced) { try KeyTemplate("{prefix/{path}") }
        #expect(throws: KeyTemplate.TemplateError.missingPath) { try KeyTemplate("{prefix}/{date}") }
    }

    @Test func partLayoutGrowsToTenThousandParts() {
        let mib: Int64 = 1 << 20
        #expect(PartLayout(size: 8 * mib, requestedPartSize: 8 * mib).isMultipart == false)
        let l = PartLayout(size: 8 * mib + 1, requestedPartSize: 8 * mib)
        #expect(l.isMultipart && l.partCount == 2 && l.range(ofPart: 2) == (8 * mib, 1))
        // 200 GB at 8 MiB would need 23,842 parts: the part size grows to whole MiB that fit.
        let huge = PartLayout(size: 200_000_000_000, requestedPartSize: 8 * mib)
        #expect(huge.partSize % mib == 0)
        #expect(huge.partCount <= 10_000 && huge.partCount > 9_000)
        #expect(PartLayout(size: 0, requestedPartSize: 8 * mib).partCount == 1)
    }

    @Test func etagMatchesS3sRule() {
        let a: [UInt8] = Array(repeating: 1, count: 16), b: [UInt8] = Array(repeating: 2, count: 16)
        let single = PartLayout(size: 5, requestedPartSize: 5 << 20)
        #expect(single.etag(partMD5s: [a]) == a.hex)
        let multi = PartLayout(size: 6 << 20, requestedPartSize: 5 << 20)
        #expect(multi.etag(partMD5s: [a, b]) == Digest.md5(a + b).hex + "-2")
    }

    @Test func fileHashesOverParts() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-hash-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bytes = (0..<(5 << 20) + 3).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let path = dir.appendingPathComponent("f").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let fp = try #require(FileWalker.fingerprint(path: path))
        let h = try FileHashes.compute(path: path, layout: PartLayout(size: fp.size, requestedPartSize: 5 << 20), fingerprint: fp)
        #expect(h.sha256 == Digest.sha256(bytes))
        #expect(h.partMD5s == [Digest.md5(Array(bytes[..<(5 << 20)])), Digest.md5(Array(bytes[(5 << 20)...]))])
        // A stale fingerprint means the file changed: refuse rather than hash a moving target.
        var stale = fp
        stale.mtimeNanoseconds += 1
        #expect(throws: FileHashes.HashError.self) {
            try FileHashes.compute(path: path, layout: PartLayout(size: fp.size, requestedPartSize: 5 << 20), fingerprint: stale)
        }
    }

    @Test func largeFilesHashOnTwoThreadsToTheSameResult() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-hash2-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let size = (70 << 20) + 5  // above the two-thread threshold, not a whole number of parts
        var bytes = [UInt8](repeating: 0, count: size)
        var x: UInt32 = 12345
        for i in 0..<size { x = x &* 1_103_515_245 &+ 12345; bytes[i] = UInt8(truncatingIfNeeded: x >> 16) }
        let path = dir.appendingPathComponent("big").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let fp = try #require(FileWalker.fingerprint(path: path))
        let layout = PartLayout(size: fp.size, requestedPartSize: 8 << 20)
        let h = try FileHashes.compute(path: path, layout: layout, fingerprint: fp)
        #expect(h.sha256 == Digest.sha256(bytes))
        let parts = (1...layout.partCount).map { n -> [UInt8] in
            let (offset, length) = layout.range(ofPart: n)
            return Array(bytes[Int(offset)..<Int(offset + length)])
        }
        #expect(h.partMD5s == parts.map { Digest.md5($0) })
        #expect(h.partSHA256s == parts.map { Digest.sha256($0) })
        // The one-thread path (a smaller file) gives each part's SHA-256 too.
        let small = dir.appendingPathComponent("small").path
        #expect(FileManager.default.createFile(atPath: small, contents: Data(bytes[0..<(12 << 20)])))
        let sfp = try #require(FileWalker.fingerprint(path: small))
        let sl = PartLayout(size: sfp.size, requestedPartSize: 5 << 20)
        let sh = try FileHashes.compute(path: small, layout: sl, fingerprint: sfp)
        #expect(
            sh.partSHA256s
                == (1...sl.partCount).map { n in
                    let (offset, length) = sl.range(ofPart: n)
                    return Digest.sha256(Array(bytes[Int(offset)..<Int(offset + length)]))
                })
    }

    @Test func byteSizes() {
        #expect(ByteSize.parse("8MiB") == 8 << 20)
        #expect(ByteSize.parse("500k") == Int64(512_000))
        #expect(ByteSize.parse("2M") == 2 << 20)
        #expect(ByteSize.parse("1.5MB") == 1_500_000)
        #expect(ByteSize.parse("4096") == 4096)
        #expect(ByteSize.parse("2M/s") == 2 << 20)
        #expect(ByteSize.parse("fast") == nil)
        #expect(ByteSize.parse("5 parsecs") == nil)
        #expect(ByteSize.format(512) == "512 B")
        #expect(ByteSize.format(3 << 20) == "3.0 MiB")
    }

    @Test func walkerSkipsWhatItMust() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-walk-\(UUID())").path
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/wt-a/deep", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/.hiddendir", withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: root) }
        for p in [
            "/loose.txt", "/wt-a/x.flac", "/wt-a/deep/y.csv", "/wt-a/z.flac.part", "/wt-a/z.raw", "/wt-a/q.part", "/wt-a/.ceti-part-0123",
            "/wt-a/.dot", "/.hiddendir/h", "/ledger.sqlite",
        ] {
            #expect(fm.createFile(atPath: root + p, contents: Data("x".utf8)))
        }
        try fm.createSymbolicLink(atPath: root + "/wt-a/link", withDestinationPath: "/etc/hostname")
        var walker = FileWalker(excludedPaths: [root + "/ledger.sqlite"])
        let files = try walker.walk(root)
        // Only ceti's own temporary files are skipped (a pull's partial, compress's output beside
        // its input) and the ledger: dot-files and a tag's own `q.part` are uploaded.
        #expect(files.map(\.relativePath) == ["h", "loose.txt", ".dot", "deep/y.csv", "q.part", "x.flac", "z.raw"])
        #expect(files.map(\.device) == [".hiddendir", "unknown-device", "wt-a", "wt-a", "wt-a", "wt-a", "wt-a"])
        #expect(walker.skipped.contains { $0.path.hasSuffix("/wt-a/link") })
        #expect(throws: FileWalker.WalkError.self) { _ = try walker.walk(root + "/loose.txt") }
    }

    @Test func s3XML() {
        let xml = """
            <ListPartsResult><Part><PartNumber>1</PartNumber><ETag>&quot;abc&quot;</ETag><Size>5</Size></Part>\
            <Part><PartNumber>2</PartNumber><ETag>"def"</ETag><Size>6</Size></Part><IsTruncated>false</IsTruncated></ListPartsResult>
            """
        let parts = S3XML.blocks("Part", in: xml)
        #expect(parts.count == 2)
        #expect(S3XML.value("ETag", in: parts[0]) == "\"abc\"")
        #expect(S3XML.value("Size", in: parts[1]) == "6")
        #expect(S3XML.value("Missing", in: xml) == nil)
        #expect(S3XML.unescape("a&amp;b&#233;&#x9BE8;") == "a&bé鯨")
        #expect(S3XML.escape("<\"&'>") == "&lt;&quot;&amp;&apos;&gt;")
    }

    @Test func retryClassification() {
        #expect(S3Client.isRetryable(status: 500, code: "InternalError"))
        #expect(S3Client.isRetryable(status: 503, code: "SlowDown"))
        #expect(S3Client.isRetryable(status: 400, code: "BadDigest"))
        #expect(S3Client.isRetryable(status: 400, code: "RequestTimeout"))
        #expect(!S3Client.isRetryable(status: 403, code: "SignatureDoesNotMatch"))
        #expect(!S3Client.isRetryable(status: 404, code: "NoSuchBucket"))
        let p = RetryPolicy(maxAttempts: 5, baseDelay: 1, maxDelay: 4)
        for attempt in 1...6 {
            let d = p.delay(afterAttempt: attempt)
            let cap = min(4, pow(2, Double(attempt - 1)))
            #expect(d >= cap / 2 && d <= cap)
        }
        #expect(S3Client.parseHTTPDate("Sun, 22 Nov 2026 03:00:00 GMT") == Date(timeIntervalSince1970: 1_795_316_400))
    }
}

@Suite struct TimestampTests {
    @Test func formats() {
        let d = Date(timeIntervalSince1970: 1_795_316_467.9)  // 2026-11-22T03:01:07.9Z
        #expect(Timestamp.iso8601(d) == "2026-11-22T03:01:07Z")
        #expect(Timestamp.compact(d) == "20261122T030107Z")
        #expect(Timestamp.utcDate(d) == "2026-11-22")
        #expect(Timestamp.utcDate(Date(timeIntervalSince1970: 0)) == "1970-01-01")
    }
}
