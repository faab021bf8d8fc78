import Foundation
import Testing

@testable import CetiKit

/// The custody rule's proofs, in the ledger alone (the real-server side is in
/// Tests/integration/test_custody.py).
@Suite struct CustodyProofTests {
    let ledger: Ledger

    init() throws {
        ledger = try Ledger(
            path: FileManager.default.temporaryDirectory
                .appendingPathComponent("ceti-custody-\(UUID())/l.sqlite").path)
    }

    func copy(_ device: String, _ name: String, sha: String = "same", size: Int64 = 10) -> CopyRecord {
        CopyRecord(
            device: device, remotePath: "/data/\(name)", size: size, mtime: 1, sha256: sha,
            localPath: "/staging/\(device)/\(name)", remoteVerified: true, verifiedAt: "2026-12-01T00:00:00Z")
    }

    func object(_ key: String, bucket: String = "field", path: String, sha: String = "same", size: Int64 = 10) -> ObjectRecord {
        ObjectRecord(
            bucket: bucket, key: key, device: "d", localPath: path, size: size, sha256: sha, etag: "e-\(key)",
            partSize: 0, verifiedAt: "2026-12-01T00:00:01Z")
    }

    @Test func anotherTagsIdenticalBytesProveNothing() throws {
        let a = copy("wt-aaaaaaaa", "data_state.csv")
        let b = copy("wt-bbbbbbbb", "data_state.csv")
        try ledger.recordCopy(a)
        try ledger.recordCopy(b)
        try ledger.recordVerified(object("raw/x/wt-aaaaaaaa/data_state.csv", path: a.localPath))
        #expect(try ledger.objectsProving(a, bucket: "field").map(\.key) == ["raw/x/wt-aaaaaaaa/data_state.csv"])
        #expect(try ledger.objectsProving(b, bucket: "field").isEmpty)
    }

    @Test func anotherBucketProvesNothing() throws {
        let a = copy("wt-aaaaaaaa", "a.csv")
        try ledger.recordCopy(a)
        try ledger.recordVerified(object("k", bucket: "scratch", path: a.localPath))
        #expect(try ledger.objectsProving(a, bucket: "field").isEmpty)
        #expect(try ledger.objectsProving(a, bucket: "scratch").count == 1)
    }

    @Test func theCopysOwnDerivativeProvesIt() throws {
        let raw = copy("wt-aaaaaaaa", "1.raw", sha: "raw-sha", size: 600)
        try ledger.recordCopy(raw)
        try ledger.recordDerivative(
            DerivativeRecord(
                inputPath: raw.localPath, inputSHA256: "raw-sha", inputSize: 600, outputPath: "/staging/wt-aaaaaaaa/1.flac",
                outputSHA256: "flac-sha", outputSize: 200, codec: "flac", parameters: "", flacMD5: nil, verifiedAt: "t"))
        // The same FLAC bytes uploaded from elsewhere are not this copy's derivative.
        try ledger.recordVerified(object("elsewhere", path: "/tmp/1.flac", sha: "flac-sha", size: 200))
        #expect(try ledger.objectsProving(raw, bucket: "field").isEmpty)
        try ledger.recordVerified(object("own", path: "/staging/wt-aaaaaaaa/1.flac", sha: "flac-sha", size: 200))
        #expect(try ledger.objectsProving(raw, bucket: "field").map(\.key) == ["own"])
        // Forgotten once S3 no longer holds it.
        try ledger.forgetObject(bucket: "field", key: "own")
        #expect(try ledger.objectsProving(raw, bucket: "field").isEmpty)
    }

    @Test func recordedContentIsTheNewestRecordForThePath() throws {
        #expect(try ledger.recordedContent(localPath: "/staging/wt-aaaaaaaa/a.csv") == nil)
        try ledger.recordCopy(copy("wt-aaaaaaaa", "a.csv", sha: "pulled"))
        #expect(
            try ledger.recordedContent(localPath: "/staging/wt-aaaaaaaa/a.csv")
                == RecordedContent(sha256: "pulled", size: 10, isDerivative: false))
        try ledger.recordDerivative(
            DerivativeRecord(
                inputPath: "/staging/wt-aaaaaaaa/a.csv", inputSHA256: "pulled", inputSize: 10,
                outputPath: "/staging/wt-aaaaaaaa/a.csv.gz", outputSHA256: "gz", outputSize: 4, codec: "gzip",
                parameters: "-6", flacMD5: nil, verifiedAt: "t"))
        #expect(try ledger.recordedContent(localPath: "/staging/wt-aaaaaaaa/a.csv.gz")?.isDerivative == true)
    }

    @Test func objectCheckSaysWhyAnObjectIsNoProof() throws {
        let o = object("k", path: "/p")
        let gone = ObjectCheck(bucket: "field") { _ in nil }
        let other = ObjectCheck(bucket: "field") { _ in ObjectHead(size: 10, etag: "different", sha256: nil) }
        let held = ObjectCheck(bucket: "field") { _ in ObjectHead(size: 10, etag: "e-k", sha256: nil) }
        #expect(try gone.problem(with: o)?.contains("gone from S3") == true)
        #expect(try other.problem(with: o)?.contains("other content") == true)
        #expect(try held.problem(with: o) == nil)
        // A network failure keeps the file (said why); a refused credential ends the run.
        let down = ObjectCheck(bucket: "field") { _ in throw S3Error.unreachable(operation: "HeadObject", key: "k", attempts: 8, last: "x")
        }
        #expect(try down.problem(with: o)?.contains("could not confirm") == true)
        let refused = ObjectCheck(bucket: "field") { _ in
            throw S3Error.accessDenied(bucket: "field", code: "AccessDenied", credentialSource: "env", endpoint: "e")
        }
        #expect(throws: S3Error.self) { try refused.problem(with: o) }
    }
}
