import Foundation
import Testing

@testable import CetiKit

/// `ceti restore`'s steps in process, beside the real-server tests (test_restore.py): where a
/// manifest is read from, which names are refused, which raw layout an old manifest gets, and a
/// download cut off mid-object resuming from its last whole chunk with nothing fetched twice.
@Suite struct RestoreTests {
    @Test func sourcesNameAManifestInAFileOrInARunsDeviceFolder() throws {
        #expect(try RestoreSource(parsing: "runs/manifest.json") == .file("runs/manifest.json"))
        #expect(
            try RestoreSource(parsing: "s3://b/raw/_runs/R/wt-1/") == .s3(bucket: "b", key: "raw/_runs/R/wt-1/manifest.json"))
        #expect(try RestoreSource(parsing: "s3://b/raw/_runs/R/wt-1") == .s3(bucket: "b", key: "raw/_runs/R/wt-1/manifest.json"))
        #expect(try RestoreSource(parsing: "S3://b/x/manifest.json") == .s3(bucket: "b", key: "x/manifest.json"))
        for bad in ["s3://", "s3://b", "s3:///key"] {
            #expect(throws: UsageError.self) { try RestoreSource(parsing: bad) }
        }
    }

    @Test func onlyPlainUniqueNamesAreRestored() {
        #expect(RestoreRun.isPlainName("1700000000000.raw") && RestoreRun.isPlainName(".hidden") && RestoreRun.isPlainName("%FF%FE x"))
        #expect(RestoreRun.isPlainName("sensors/gps.csv") && RestoreRun.isPlainName("a/.b/c"))
        for bad in ["", ".", "..", "../x", "a/../b", "/etc/passwd", "a//b", "a/", "x%00y", ".ceti-restore-0123.download"] {
            #expect(!RestoreRun.isPlainName(bad), "\(bad)")
        }
        let a = entry("a.csv", bytes: [1]), twice = entry("b.csv", bytes: [2])
        let (ok, refused) = RestoreRun.plan([a, twice, twice, entry("../c", bytes: [3])], only: [], keepDerivatives: false)
        #expect(ok.map(\.name) == ["a.csv"])
        #expect(refused.map(\.name) == ["b.csv", "b.csv", "../c"])
        #expect(RestoreRun.plan([a, twice], only: ["b*"], keepDerivatives: false).0.map(\.name) == ["b.csv"])
    }

    @Test func aManifestWithoutALayoutUsesTheEncodersFlagsElseTheTagsDefault() {
        var d = Manifest.Derivative(name: "x.flac", size: 1, sha256: "", codec: "flac", parameters: "-5", flacMd5: nil)
        #expect(Restorer.layout(d).format == .tag && Restorer.layout(d).note != nil)
        d.parameters = "--channels=2 --bps=24 --sample-rate=48000 --sign=signed --endian=little -5"
        #expect(Restorer.layout(d) == (RawFormat(channels: 2, bitsPerSample: 24, sampleRate: 48_000, bigEndian: false, signed: true), nil))
        d.layout = Manifest.Layout(RawFormat(channels: 1, bitsPerSample: 16, sampleRate: 750, bigEndian: true, signed: true), from: "name")
        #expect(Restorer.layout(d).format.sampleRate == 750)
    }

    @Test func aDownloadCutOffMidObjectResumesFromItsLastWholeChunk() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-restore-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = (0..<Int(ObjectDownload.chunk) * 5 + 7).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        let e = entry("log.dat", bytes: bytes)
        let store = MemoryObjectStore(buckets: ["b"])
        store.insert(bucket: "b", key: e.object.key, bytes: bytes)
        let manifest = Manifest(
            schemaVersion: 1, runId: "R", runStartedAt: "", device: "wt-1", host: "", bucket: "b", files: [e])
        var options = RestoreOptions(source: .file("m.json"), directory: dir)
        options.jobs = 1

        // The 5th ranged GET fails for good: the chunks before it that arrived are kept, in order.
        store.fail(.service(operation: "GetObject", key: e.object.key, status: 500, code: "InternalError", message: ""), onRequest: 5)
        let first = try await RestoreRun.restore(manifest, bucket: "b", options: options, store: store, console: Console(verbosity: .quiet))
        #expect(first.restored == 0 && first.problems.map(\.name) == ["log.dat"])
        let partial = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(".download") })
        let kept = try #require(FileWalker.fingerprint(path: dir + "/" + partial)).size
        #expect(kept > 0 && kept <= 4 * ObjectDownload.chunk && kept % ObjectDownload.chunk == 0)

        let before = store.count("GetObject")
        let second = try await RestoreRun.restore(
            manifest, bucket: "b", options: options, store: store, console: Console(verbosity: .quiet))
        #expect(second.restored == 1 && second.problems.isEmpty)
        #expect(second.downloaded == Int64(bytes.count) - kept)
        // Only the chunks after the kept ones (the last one 7 bytes long).
        #expect(store.count("GetObject") - before == Int((Int64(bytes.count) - kept + ObjectDownload.chunk - 1) / ObjectDownload.chunk))
        #expect(FileManager.default.contents(atPath: dir + "/log.dat") == Data(bytes))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["log.dat"])
    }

    func entry(_ name: String, bytes: [UInt8]) -> Manifest.Entry {
        let sha = Digest.sha256(bytes).hex
        return Manifest.Entry(
            name: name, remotePath: "/data/" + name, size: Int64(bytes.count), mtime: 1_700_000_000, sha256: sha, derivative: nil,
            object: Manifest.Object(key: "raw/2026-12-02/wt-1/" + name, size: Int64(bytes.count), sha256: sha, etag: Digest.md5(bytes).hex))
    }
}
