import Foundation
import Testing

@testable import CetiKit

/// The custody rule for `compress`, in-process: an original goes only with its own verified output.
@Suite struct CompressCustodyTests {
    struct Fixture {
        let dir: String
        let ledger: Ledger
        func compressor(keep: Bool = false) -> Compressor {
            var options = CompressOptions(directories: [dir], ledgerPath: ledger.path, jobs: 1)
            options.keep = keep
            return Compressor(options: options, ledger: ledger, gzipThreads: 2)
        }
    }

    func fixture() throws -> Fixture {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-compress-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return Fixture(dir: dir, ledger: try Ledger(path: dir + "/ledger.sqlite"))
    }

    /// Raw audio in the tag's layout (3 ch, 16-bit, big-endian): a tone plus a little noise.
    func raw(frames: Int, seed: UInt32 = 1) -> Data {
        var out = Data(capacity: frames * 6)
        var state = seed
        for i in 0..<frames {
            for c in 0..<3 {
                state = state &* 1_103_515_245 &+ 12345
                let v = Int16(clamping: Int(2000 * sin(Double(i + 37 * c) / 23)) + Int(state >> 24) - 128)
                out.append(UInt8(truncatingIfNeeded: UInt16(bitPattern: v) >> 8))
                out.append(UInt8(truncatingIfNeeded: UInt16(bitPattern: v)))
            }
        }
        return out
    }

    func sha(_ data: Data) -> String {
        var d = Digest(.sha256)
        data.withUnsafeBytes { d.update($0) }
        return d.finalize().hex
    }

    func write(_ data: Data, _ path: String) throws { try data.write(to: URL(fileURLWithPath: path)) }
    func read(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }
    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    func pulled(_ f: Fixture, _ path: String, _ data: Data) throws {
        try f.ledger.recordCopy(
            CopyRecord(
                device: "wt-test", remotePath: "/data/" + (path as NSString).lastPathComponent,
                size: Int64(data.count), mtime: 1_700_000_000, sha256: sha(data), localPath: path,
                remoteVerified: true, verifiedAt: Timestamp.now()))
    }

    @Test(arguments: [Compressor.Kind.flacFromRaw, .gzip])
    func aStagedCopyThatChangedSinceItsPullIsKeptAndNothingIsRecorded(kind: Compressor.Kind) throws {
        let f = try fixture()
        let path = f.dir + (kind == .gzip ? "/data_battery.csv" : "/1700000000000.raw")
        let original = kind == .gzip ? Data(String(repeating: "t,v\n1,2\n", count: 5000).utf8) : raw(frames: 20_000)
        try write(original, path)
        try pulled(f, path, original)
        // One byte changed since the pull, same size.
        var changed = original
        changed[changed.count / 2] ^= 0x5A
        try write(changed, path)

        let output = Compressor.outputPath(path, kind)
        let o = f.compressor().compress(path, kind: kind)
        #expect(o.action == .failed)
        let message = try #require(o.message)
        #expect(message.contains("\(path) changed since it was pulled: SHA-256 recorded \(sha(original)), now \(sha(changed))"))
        #expect(message.contains("kept, output discarded"))
        #expect(read(path) == changed)
        #expect(!exists(output) && !exists(output + ".part"))
        #expect(try f.ledger.derivative(outputPath: output) == nil)

        // The same file as it was pulled is compressed, and its original removed.
        try write(original, path)
        let ok = f.compressor().compress(path, kind: kind)
        #expect(ok.action == .compressed && ok.originalRemoved, "\(ok)")
        #expect(!exists(path) && exists(output))
        #expect(try f.ledger.derivative(outputPath: output)?.inputSHA256 == sha(original))
    }

    @Test func anOutputClaimedByAnotherInputInThisProcessIsACollision() throws {
        let f = try fixture()
        let path = f.dir + "/a.raw"
        let data = raw(frames: 4000)
        try write(data, path)
        let output = f.dir + "/a.flac"
        #expect(Compressor.claims.claim(output, by: f.dir + "/a.wav") == nil)
        defer { Compressor.claims.release(output, by: f.dir + "/a.wav") }
        let o = f.compressor().compress(path, kind: .flacFromRaw)
        #expect(o.action == .failed)
        #expect(o.message?.contains("\(f.dir)/a.wav and \(path) both compress to \(output)") == true, "\(o.message ?? "")")
        #expect(read(path) == data && !exists(output) && !exists(output + ".part"))
    }

    @Test func claimsAreReleasedAndOneInputAtATime() {
        let claims = ClaimRegistry()
        #expect(claims.claim("/o.flac", by: "/o.raw") == nil)
        #expect(claims.claim("/o.flac", by: "/o.wav") == "/o.raw")
        claims.release("/o.flac", by: "/o.wav")  // not the owner: no effect
        #expect(claims.claim("/o.flac", by: "/o.wav") == "/o.raw")
        claims.release("/o.flac", by: "/o.raw")
        #expect(claims.claim("/o.flac", by: "/o.wav") == nil)
    }

    @Test func concurrentProducersOfOneOutputNeverBothWriteIt() async throws {
        let f = try fixture()
        // Same bytes under two names: whichever wins, the output must be exactly one input's.
        let data = raw(frames: 30_000)
        try write(data, f.dir + "/a.raw")
        try write(data, f.dir + "/a.RAW")
        let compressor = f.compressor(keep: true)
        let outcomes = await withTaskGroup(of: CompressOutcome.self) { group in
            for name in ["a.raw", "a.RAW"] {
                group.addTask { compressor.compress(f.dir + "/" + name, kind: .flacFromRaw) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        // At most one compressed; the other failed naming the first, or (when it came after)
        // found an output recorded for the other input.
        #expect(outcomes.filter { $0.action == .compressed }.count <= 1)
        for o in outcomes where o.action == .failed {
            #expect(o.message?.contains("both compress to") == true, "\(o.message ?? "")")
        }
        #expect(read(f.dir + "/a.raw") == data && read(f.dir + "/a.RAW") == data)
        if exists(f.dir + "/a.flac") {
            let d = try #require(try f.ledger.derivative(outputPath: f.dir + "/a.flac"))
            #expect(try Compressor.sha256FromDisk(f.dir + "/a.flac") == d.outputSHA256)
        }
    }

    @Test func anExistingOutputOfAnotherInputIsACollisionAndTheInputIsKept() throws {
        let f = try fixture()
        let a = f.dir + "/a.raw"
        try write(raw(frames: 4000), a)
        #expect(f.compressor().compress(a, kind: .flacFromRaw).action == .compressed)
        let flac = try #require(read(f.dir + "/a.flac"))
        let wav = f.dir + "/a.wav"
        try write(Data("RIFF not really".utf8), wav)
        let o = f.compressor().compress(wav, kind: .flacFromWAV)
        #expect(o.action == .failed)
        #expect(o.message?.contains("is the recorded output of \(a), not of \(wav)") == true, "\(o.message ?? "")")
        #expect(exists(wav) && read(f.dir + "/a.flac") == flac)
    }

    @Test func anOriginalLeftBesideItsOutputGoesOnlyIfTheOutputStillHasItsRecordedSHA256() throws {
        let f = try fixture()
        let path = f.dir + "/1700000000000.raw"
        let data = raw(frames: 8000)
        try write(data, path)
        #expect(f.compressor(keep: true).compress(path, kind: .flacFromRaw).action == .compressed)
        let output = f.dir + "/1700000000000.flac"
        var flac = try #require(read(output))
        let good = flac
        flac[flac.count - 10] ^= 0x01  // same size, other bytes
        try write(flac, output)
        let o = f.compressor().compress(path, kind: .flacFromRaw)
        #expect(o.action == .failed && !o.originalRemoved)
        #expect(o.message?.contains("no longer has the SHA-256 recorded for it") == true, "\(o.message ?? "")")
        #expect(read(path) == data)

        try write(good, output)
        let settled = f.compressor().compress(path, kind: .flacFromRaw)
        #expect(settled.action == .skipped && settled.originalRemoved, "\(settled)")
        #expect(!exists(path))
    }

    @Test func aPartLockedByAnotherWriterIsNeitherTruncatedNorRemoved() throws {
        let f = try fixture()
        let path = f.dir + "/a.csv"
        try write(Data("x,y\n1,2\n".utf8), path)
        let part = f.dir + "/a.csv.gz.part"
        try write(Data("someone else's bytes".utf8), part)
        // flock locks belong to an open file description: this one conflicts with the compressor's.
        let fd = open(part, O_RDONLY)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0)
        let o = f.compressor().compress(path, kind: .gzip)
        #expect(o.action == .failed)
        #expect(o.message?.contains("\(part) is being written by another process") == true, "\(o.message ?? "")")
        #expect(read(part) == Data("someone else's bytes".utf8))
        #expect(exists(path) && !exists(f.dir + "/a.csv.gz"))
    }

    /// The meter moves within a file as it is encoded (FLAC and gzip), to exactly its size.
    @Test func progressMovesWithinAFile() throws {
        let f = try fixture()
        let input = raw(frames: 600_000)  // 3.6 MB: several chunks
        try input.write(to: URL(fileURLWithPath: f.dir + "/1700000000000.raw"))
        try Data(String(repeating: "1700000000000,1,2\n", count: 200_000).utf8).write(to: URL(fileURLWithPath: f.dir + "/s.csv"))
        for (name, kind) in [("1700000000000.raw", Compressor.Kind.flacFromRaw), ("s.csv", .gzip)] {
            let steps = Locked<[Int64]>([])
            var c = f.compressor()
            c.progress = { n in steps.update { $0.append(n) } }
            let size = try #require(FileWalker.fingerprint(path: f.dir + "/" + name)).size
            #expect(c.compress(f.dir + "/" + name, kind: kind).action == .compressed)
            #expect(steps.value.count > 1 && steps.value.reduce(0, +) == size, "\(name): \(steps.value.count) steps")
        }
    }
}
