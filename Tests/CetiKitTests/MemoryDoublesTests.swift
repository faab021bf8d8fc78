import Foundation
import Testing

@testable import CetiKit

/// Pins the behaviour of the in-memory doubles (`MemoryObjectStore`, `MemoryTag`) that the
/// whole-pipeline tests rely on: where they mirror S3Client and the SSH tag, and their faults.
@Suite struct MemoryDoublesTests {
    let b = "bucket"
    let noRetryDelay = RetryPolicy(maxAttempts: 3, baseDelay: 0, maxDelay: 0)

    /// The status and code of a service error.
    func service(_ e: S3Error?) -> (status: Int, code: String)? {
        guard case .service(_, _, let status, let code, _)? = e else { return nil }
        return (status, code)
    }

    func transient(_ e: S3Error?) -> TransientFailure? {
        guard case .transient(let f)? = e else { return nil }
        return f
    }

    // MARK: object store

    @Test func multipartUploadFromAFileGetsTheETagFileHashesPredicts() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-doubles-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bytes = (0..<(5 << 20) + 3).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let path = dir.appendingPathComponent("f").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let fp = try #require(FileWalker.fingerprint(path: path))
        let layout = PartLayout(size: fp.size, requestedPartSize: 5 << 20)
        let hashes = try FileHashes.compute(path: path, layout: layout, fingerprint: fp)
        #expect(layout.partCount == 2)

        let store = MemoryObjectStore(buckets: [b])
        let fd = open(path, O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        let sent = Locked<Int64>(0)
        let id = try await store.createMultipartUpload(bucket: b, key: "k", metadata: [("sha256", hashes.sha256.hex)])
        var parts: [(number: Int, etag: String)] = []
        for n in 1...layout.partCount {
            let (offset, length) = layout.range(ofPart: n)
            let etag = try await store.uploadPart(
                bucket: b, key: "k", uploadID: id, number: n, body: .file(descriptor: fd, offset: offset, length: length),
                md5: hashes.partMD5s[n - 1], sha256: hashes.partSHA256s[n - 1], onBytesSent: { n in sent.update { $0 += n } })
            #expect(etag == hashes.partMD5s[n - 1].hex)
            parts.append((n, etag))
        }
        #expect(store.openUploads(bucket: b).map(\.uploadID) == [id])
        #expect(
            try await store.listParts(bucket: b, key: "k", uploadID: id) == [
                RemotePart(number: 1, etag: parts[0].etag, size: 5 << 20), RemotePart(number: 2, etag: parts[1].etag, size: 3),
            ])
        let etag = try await store.completeMultipartUpload(bucket: b, key: "k", uploadID: id, parts: parts, createOnly: true)
        #expect(etag == hashes.etag && etag.hasSuffix("-2"))
        #expect(try await store.headObject(bucket: b, key: "k") == ObjectHead(size: fp.size, etag: etag, sha256: hashes.sha256.hex))
        #expect(store.object(bucket: b, key: "k")?.bytes == bytes)
        #expect(store.openUploads(bucket: b).isEmpty)
        #expect(sent.value == fp.size)
        // The upload is gone once completed.
        await #expect(throws: S3Error.self) { try await store.listParts(bucket: b, key: "k", uploadID: id) }
        let again = await #expect(throws: S3Error.self) {
            try await store.completeMultipartUpload(bucket: b, key: "k", uploadID: id, parts: parts, createOnly: false)
        }
        #expect(service(again)?.code == "NoSuchUpload")
    }

    @Test func singlePutIsItsMD5AndADamagedBodyIsBadDigest() async throws {
        let store = MemoryObjectStore(buckets: [b])
        let body = Array("hello".utf8)
        #expect(try await store.putSmall(body, bucket: b, key: "m/x.json") == Digest.md5(body).hex)
        #expect(store.object(bucket: b, key: "m/x.json")?.metadata == ["sha256": Digest.sha256(body).hex])
        #expect(try await store.headObject(bucket: b, key: "m/x.json")?.sha256 == Digest.sha256(body).hex)

        // As S3Client: BadDigest is transient (the bytes were damaged on the way), so the retrying
        // layer tries again, then reports the server's answer.
        let wrong = Digest.md5(Array("other".utf8))
        let once = await #expect(throws: S3Error.self) {
            try await store.putObject(
                bucket: b, key: "y", body: .bytes(body), md5: wrong, sha256: [], metadata: [], createOnly: false, onBytesSent: nil)
        }
        #expect(transient(once)?.code == "BadDigest" && transient(once)?.status == 400)
        let retried = await #expect(throws: S3Error.self) {
            try await RetryingStore(store, policy: noRetryDelay).putObject(
                bucket: b, key: "y", body: .bytes(body), md5: wrong, sha256: [], metadata: [], createOnly: false, onBytesSent: nil)
        }
        #expect(service(retried)?.status == 400 && service(retried)?.code == "BadDigest")
        #expect(store.object(bucket: b, key: "y") == nil)
        #expect(store.count("PutObject") == 5)
    }

    @Test func createOnlyAndCompleteRefusals() async throws {
        let store = MemoryObjectStore(buckets: [b])
        _ = try await store.putSmall([1], bucket: b, key: "k", createOnly: true)
        let taken = await #expect(throws: S3Error.self) { try await store.putSmall([2], bucket: b, key: "k", createOnly: true) }
        #expect(taken?.isPreconditionFailed == true)
        #expect(store.object(bucket: b, key: "k")?.bytes == [1])
        // Without create-only a PUT replaces.
        _ = try await store.putSmall([3], bucket: b, key: "k")
        #expect(store.object(bucket: b, key: "k")?.bytes == [3])

        let part = [UInt8](repeating: 7, count: 5 << 20)
        let id = try await store.createMultipartUpload(bucket: b, key: "k", metadata: [])
        let e1 = try await store.uploadPart(
            bucket: b, key: "k", uploadID: id, number: 1, body: .bytes(part), md5: Digest.md5(part), sha256: [], onBytesSent: nil)
        let e2 = try await store.uploadPart(
            bucket: b, key: "k", uploadID: id, number: 2, body: .bytes([9]), md5: [], sha256: [], onBytesSent: nil)
        let badPart = await #expect(throws: S3Error.self) {
            try await store.completeMultipartUpload(bucket: b, key: "k", uploadID: id, parts: [(1, e1), (2, e1)], createOnly: false)
        }
        #expect(service(badPart)?.status == 400 && service(badPart)?.code == "InvalidPart")
        let exists = await #expect(throws: S3Error.self) {
            try await store.completeMultipartUpload(bucket: b, key: "k", uploadID: id, parts: [(1, e1), (2, e2)], createOnly: true)
        }
        #expect(exists?.isPreconditionFailed == true)
        #expect(store.object(bucket: b, key: "k")?.bytes == [3])
        // A part smaller than 5 MiB that is not the last is refused, as by S3.
        let id2 = try await store.createMultipartUpload(bucket: b, key: "s", metadata: [])
        for n in 1...2 {
            _ = try await store.uploadPart(
                bucket: b, key: "s", uploadID: id2, number: n, body: .bytes([1]), md5: [], sha256: [], onBytesSent: nil)
        }
        let tooSmall = await #expect(throws: S3Error.self) {
            try await store.completeMultipartUpload(
                bucket: b, key: "s", uploadID: id2, parts: [(1, Digest.md5([1]).hex), (2, Digest.md5([1]).hex)], createOnly: false)
        }
        #expect(service(tooSmall)?.code == "EntityTooSmall")
        // Abort is idempotent; ListParts of a gone upload is `.noSuchUpload`.
        try await store.abortMultipartUpload(bucket: b, key: "s", uploadID: id2)
        try await store.abortMultipartUpload(bucket: b, key: "s", uploadID: id2)
        let gone = await #expect(throws: S3Error.self) { try await store.listParts(bucket: b, key: "s", uploadID: id2) }
        guard case .noSuchUpload(key: "s")? = gone else {
            Issue.record("expected noSuchUpload, got \(String(describing: gone))")
            return
        }
        #expect(store.openUploads(bucket: b).map(\.key) == ["k"])
    }

    @Test func faultOnTheNthRequest() async throws {
        let store = MemoryObjectStore(buckets: [b])
        let slowDown = S3Error.transient(TransientFailure(operation: "PutObject", key: "k", status: 503, code: "SlowDown"))
        store.fail(slowDown, onRequest: 2, operation: "PutObject")
        _ = try await store.headObject(bucket: b, key: "k")
        _ = try await store.putSmall([1], bucket: b, key: "k1")
        let e = await #expect(throws: S3Error.self) { try await store.putSmall([2], bucket: b, key: "k2") }
        #expect(transient(e)?.code == "SlowDown")
        // It failed before taking effect, and only once.
        #expect(store.object(bucket: b, key: "k2") == nil)
        _ = try await store.putSmall([2], bucket: b, key: "k2")
        #expect(store.keys(bucket: b) == ["k1", "k2"])

        // Counting every request: the third from now, whatever it is.
        store.fail(.accessDenied(bucket: b, code: "AccessDenied", credentialSource: "test", endpoint: "memory"), onRequest: 3)
        try await store.checkBucket(b)
        _ = try await store.listFolder(bucket: b, prefix: "")
        let denied = await #expect(throws: S3Error.self) { try await store.getObject(bucket: b, key: "k1") }
        #expect(denied?.isFatal == true)
        #expect(
            store.requests.map { "\($0.operation) \($0.key)" } == [
                "HeadObject k", "PutObject k1", "PutObject k2", "PutObject k2", "ListObjectsV2 bucket", "ListObjectsV2 bucket",
                "GetObject k1",
            ])
        #expect(store.count("PutObject") == 3)
    }

    @Test func retryingStoreRetriesATransientFault() async throws {
        let store = MemoryObjectStore(buckets: [b])
        store.fail(.transient(TransientFailure(operation: "PutObject", key: "k", network: "connection reset")), onRequest: 1)
        let sent = Locked<Int64>(0)
        let etag = try await RetryingStore(store, policy: noRetryDelay).putObject(
            bucket: b, key: "k", body: .bytes([1, 2, 3]), md5: Digest.md5([1, 2, 3]), sha256: Digest.sha256([1, 2, 3]),
            metadata: [], createOnly: true, onBytesSent: { n in sent.update { $0 += n } })
        #expect(etag == Digest.md5([1, 2, 3]).hex)
        #expect(store.count("PutObject") == 2)
        // The failed attempt's bytes were never counted (a network failure), the second's were.
        #expect(sent.value == 3)
    }

    @Test func offlineExhaustsTheAttempts() async throws {
        let store = MemoryObjectStore(buckets: [b])
        store.offline = true
        let e = await #expect(throws: S3Error.self) { try await RetryingStore(store, policy: noRetryDelay).checkBucket(b) }
        guard case .unreachable(operation: "ListObjectsV2", key: b, attempts: 3, last: "connection refused")? = e else {
            Issue.record("expected unreachable after 3 attempts, got \(String(describing: e))")
            return
        }
        #expect(store.count("ListObjectsV2") == 3)
        store.offline = false
        try await store.checkBucket(b)
        let missing = await #expect(throws: S3Error.self) { try await store.checkBucket("other") }
        #expect(missing?.isFatal == true)
    }

    @Test func aWriteWhoseAnswerIsLostStillLands() async throws {
        let store = MemoryObjectStore(buckets: [b])
        store.failAfterEffect(onRequest: 1, operation: "PutObject")
        // The retry of a create-only PUT then finds its own object: the caller must HEAD to tell.
        let e = await #expect(throws: S3Error.self) {
            try await RetryingStore(store, policy: noRetryDelay).putSmall([5], bucket: b, key: "k", createOnly: true)
        }
        #expect(e?.isPreconditionFailed == true)
        #expect(store.object(bucket: b, key: "k")?.bytes == [5])
        #expect(store.count("PutObject") == 2)
    }

    @Test func listingReadingAndTampering() async throws {
        let store = MemoryObjectStore(buckets: [b])
        for key in ["raw/a", "raw/b", "raw/sub/c", "rawx", "other/d"] { store.insert(bucket: b, key: key, bytes: Array(key.utf8)) }
        let listed = try await store.listFolder(bucket: b, prefix: "raw/")
        #expect(listed.keys.sorted() == ["raw/a", "raw/b"])
        #expect(listed["raw/a"] == ObjectHead(size: 5, etag: Digest.md5(Array("raw/a".utf8)).hex, sha256: nil))
        #expect(try await store.getObjectRange(bucket: b, key: "raw/sub/c", offset: 4, count: 100) == Array("sub/c".utf8))
        #expect(try await store.getObject(bucket: b, key: "nope") == nil)
        #expect(try await store.headObject(bucket: b, key: "nope") == nil)
        let noKey = await #expect(throws: S3Error.self) { try await store.getObjectRange(bucket: b, key: "nope", offset: 0, count: 1) }
        #expect(service(noKey)?.status == 404)

        _ = try await store.putSmall([1, 2], bucket: b, key: "t")
        store.replace(bucket: b, key: "t", bytes: [1, 3])
        let t = try #require(store.object(bucket: b, key: "t"))
        #expect(t.etag == Digest.md5([1, 3]).hex && t.metadata["sha256"] == Digest.sha256([1, 2]).hex)
        store.delete(bucket: b, key: "t")
        #expect(try await store.headObject(bucket: b, key: "t") == nil)
    }

    // MARK: tag

    func tag() -> MemoryTag {
        let tag = MemoryTag(hostname: "wt-0a1b2c3d", clock: 2_000_000_000)
        tag.add("1.raw", bytes: (0..<200_000).map { UInt8(truncatingIfNeeded: $0) })
        tag.add("data_gps.csv", bytes: Array("t,lat,lon\n".utf8), mtime: 1_999_999_990)
        tag.addFolder("logs")
        tag.addSymlink("latest")
        return tag
    }

    @Test func connectingListingReadingDeleting() throws {
        let tag = tag()
        let connector = MemoryTagConnector([tag])
        let c = try connector.connect(TagTarget(address: "wt-0a1b2c3d"), expectedName: nil)
        #expect(c.name == "wt-0a1b2c3d" && c.now == 2_000_000_000 && c.label == "wt-0a1b2c3d")
        #expect(
            try c.list("/data") == [
                RemoteFile(name: "1.raw", size: 200_000, mtime: 1_999_996_400, isRegular: true, isDirectory: false),
                RemoteFile(name: "data_gps.csv", size: 10, mtime: 1_999_999_990, isRegular: true, isDirectory: false),
                RemoteFile(name: "latest", size: 12, mtime: 2_000_000_000, isRegular: false, isDirectory: false),
                RemoteFile(name: "logs", size: 4096, mtime: 2_000_000_000, isRegular: false, isDirectory: true),
            ])
        #expect(try c.list("/data/logs").isEmpty)
        #expect(throws: SSHError.self) { try c.list("/nope") }

        var got: [UInt8] = []
        var chunks = 0
        let n = try c.read("/data/1.raw", from: 150_000) { chunk in
            got += chunk
            chunks += 1
        }
        #expect(n == 50_000 && got == tag.bytes(of: "1.raw").map { Array($0[150_000...]) })
        #expect(try c.read("/data/1.raw", from: 0) { _ in } == 200_000)
        #expect(tag.reads == ["1.raw": 2] && tag.bytesRead == 250_000)
        #expect(throws: SSHError.self) { try c.read("/data/missing", from: 0) { _ in } }

        try c.unlink("/data/data_gps.csv")
        #expect(tag.unlinked == ["data_gps.csv"] && tag.bytes(of: "data_gps.csv") == nil)
        let again = #expect(throws: SSHError.self) { try c.unlink("/data/data_gps.csv") }
        #expect(again.map { "\($0)".contains("no such file") } == true)

        // Unknown address, refused connection, another device under the expected name.
        let unknown = #expect(throws: SSHError.self) {
            try connector.connect(TagTarget(address: "10.0.0.9", port: 2222), expectedName: nil)
        }
        guard case .connect(host: "10.0.0.9:2222", _)? = unknown else {
            Issue.record("expected connect, got \(String(describing: unknown))")
            return
        }
        let other = #expect(throws: SSHError.self) { try connector.connect(TagTarget(address: "wt-0a1b2c3d"), expectedName: "wt-ffffffff") }
        guard case .hostKeyChanged(name: "wt-ffffffff", _, _, _, _)? = other else {
            Issue.record("expected hostKeyChanged, got \(String(describing: other))")
            return
        }
        tag.failConnect = .handshake(host: "wt-0a1b2c3d", message: "timeout")
        #expect(throws: SSHError.self) { try connector.connect(TagTarget(address: "wt-0a1b2c3d"), expectedName: nil) }
        #expect(tag.connections == 2)
    }

    @Test func aDroppedReadBreaksTheConnectionOnceAndAChangingFileShows() throws {
        let tag = tag()
        let connector = MemoryTagConnector(["10.0.0.5": tag])
        tag.dropAfter(bytes: 100_000, of: "1.raw")
        let c = try connector.connect(TagTarget(address: "10.0.0.5"), expectedName: "wt-0a1b2c3d")
        var got: [UInt8] = []
        let lost = #expect(throws: SSHError.self) { try c.read("/data/1.raw", from: 0) { got += $0 } }
        guard case .connectionLost? = lost else {
            Issue.record("expected connectionLost, got \(String(describing: lost))")
            return
        }
        #expect(got.count == 100_000)
        // As a libssh2 session: broken for good; a new connection resumes.
        #expect(throws: SSHError.self) { try c.list("/data") }
        let c2 = try connector.connect(TagTarget(address: "10.0.0.5"), expectedName: nil)
        try c2.read("/data/1.raw", from: Int64(got.count)) { got += $0 }
        #expect(got == tag.bytes(of: "1.raw"))
        #expect(tag.reads["1.raw"] == 2)

        // The recorder appends while the file is read: the read returns more than was listed.
        let grown = tag.bytes(of: "data_gps.csv")! + Array("1,2,3\n".utf8)
        tag.changeDuringRead("data_gps.csv", to: grown)
        var csv: [UInt8] = []
        #expect(try c2.read("/data/data_gps.csv", from: 0) { csv += $0 } == Int64(grown.count))
        #expect(csv == grown)
    }

    @Test func remoteChecksumsCommandIsAnsweredLikeSha256sum() throws {
        let tag = MemoryTag(hostname: "wt-0a1b2c3d", directory: "/data dir")
        // Name forms of awkward names: a newline, a byte that is not UTF-8, a CR, a quote, a
        // leading dash, a backslash, a percent sign, a space.
        let names = [
            NameCodec.encode(Array("a\nb.raw".utf8)), NameCodec.encode([0xFF, 0x2E, 0x63, 0x73, 0x76]),
            NameCodec.encode(Array("c\rr".utf8)),
            "it's.wav", "-x", "back\\slash", "50%.csv", "s p.raw", "plain.raw",
        ]
        for (i, name) in names.enumerated() { tag.add(name, bytes: Array("content \(i)".utf8)) }
        tag.addFolder("logs")
        let c = try MemoryTagConnector([tag]).connect(TagTarget(address: "wt-0a1b2c3d"), expectedName: nil)

        // Built as RemoteChecksums.run builds it.
        func command(_ names: [String], in directory: String) -> String {
            let dir = RemoteChecksums.escape(NameCodec.decodePath(directory))
            let escaped = names.map { RemoteChecksums.escape(NameCodec.decode($0)) + "\\000" }
            return "cd \"$(printf '\(dir)/')\" && printf '" + escaped.joined() + "' | xargs -0 sha256sum --"
        }
        func parsed(_ stdout: [UInt8]) -> [String: String] {
            var out: [String: String] = [:]
            for line in stdout.split(separator: 0x0A) {
                if let (hash, name) = RemoteChecksums.parse(line) { out[NameCodec.encode(name)] = hash }
            }
            return out
        }
        let all = try c.exec(command(names, in: "/data dir"))
        #expect(all.status == 0 && all.stderr.isEmpty)
        #expect(parsed(all.stdout) == Dictionary(uniqueKeysWithValues: names.map { ($0, Digest.sha256(tag.bytes(of: $0)!).hex) }))
        // GNU's escaping (coreutils 9.1): the lines of the LF, CR and backslash names start with one.
        #expect(all.stdout.split(separator: 0x0A).filter { $0.first == 0x5C }.count == 3)

        // A file gone (or a folder) is reported on stderr; the others are still printed.
        let some = try c.exec(command(["plain.raw", "gone.raw", "logs"], in: "/data dir"))
        #expect(some.status != 0 && some.stderr.contains("gone.raw: No such file") && some.stderr.contains("logs: Is a directory"))
        #expect(parsed(some.stdout) == ["plain.raw": Digest.sha256(tag.bytes(of: "plain.raw")!).hex])
        // The hash is of the bytes the tag holds now.
        tag.add("plain.raw", bytes: [0])
        #expect(parsed(try c.exec(command(["plain.raw"], in: "/data dir")).stdout) == ["plain.raw": Digest.sha256([0]).hex])
        #expect(try c.exec(command(["plain.raw"], in: "/elsewhere")).status != 0)
    }

    @Test func captureCommands() throws {
        let tag = tag()
        let c = try MemoryTagConnector([tag]).connect(TagTarget(address: "wt-0a1b2c3d"), expectedName: nil)
        let q = SSHSession.quote
        let arm = [
            "sudo", "-n", "systemd-run", "--quiet", "--collect", "--on-active=600s", "--timer-property=AccuracySec=1s",
            "--unit=ceti-capture-restart-1-1", "systemctl", "start", MemoryTag.recorder,
        ].map(q).joined(separator: " ")
        #expect(try c.exec(arm).status == 0)
        #expect(tag.timers == ["ceti-capture-restart-1-1.timer"])
        #expect(try c.exec("sudo -n systemctl stop \(q(MemoryTag.recorder))").status == 0)
        #expect(tag.activeUnits.isEmpty)
        let state = try c.exec("sudo -n systemctl is-active \(q(MemoryTag.recorder))")
        #expect(state.status == 3 && state.stdout == Array("inactive\n".utf8))
        // The dead-man's switch: the timer starts the recorder again.
        tag.fireTimers()
        #expect(tag.activeUnits == [MemoryTag.recorder] && tag.timers.isEmpty)
        _ = try c.exec(arm)
        #expect(
            try c.exec((["sudo", "-n", "systemctl", "stop", "ceti-capture-restart-1-1.timer"]).map(q).joined(separator: " ")).status == 0)
        #expect(tag.timers.isEmpty)
        #expect(try c.exec("rm -rf /data").status == 127)
        #expect(tag.commands.count == 6)
        tag.refuseSudo = true
        #expect(try c.exec("sudo -n systemctl start \(q(MemoryTag.recorder))").status == 1)
    }
}
