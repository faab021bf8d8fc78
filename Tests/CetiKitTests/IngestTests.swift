import Foundation
import Testing

@testable import CetiKit

@Suite struct IngestTests {
    func ledger() throws -> Ledger {
        try Ledger(path: FileManager.default.temporaryDirectory.appendingPathComponent("ceti-ingest-\(UUID())/l.sqlite").path)
    }

    @Test func aKilledRunIsResumedAndAFinishedOneIsNot() throws {
        let l = try ledger()
        let first = try l.openRun()
        #expect(!first.resumed && first.id.wholeMatch(of: /\d{8}T\d{6}Z-[0-9a-f]{4}/) != nil)
        // Not finished (killed): the next run is the same one.
        let again = try l.openRun()
        #expect(again.resumed && again.id == first.id && again.localDate == first.localDate)
        try l.finishRun(first.id)
        #expect(try l.openRun().id != first.id)
    }

    @Test func aManifestWithoutItsCompleteKeepsTheRunOpen() throws {
        let l = try ledger()
        let run = try l.openRun()
        try l.assign(run: run.id, device: "wt-a", host: "10.0.0.2", remotePath: "/data/1.raw", sha256: "s1", entry: "{}")
        try l.recordManifest(run: run.id, device: "wt-a", key: "raw/_runs/\(run.id)/wt-a/manifest.json", etag: "e")
        try l.finishRun(run.id)
        #expect(try l.openRun().id == run.id)
        try l.recordComplete(run: run.id, device: "wt-a")
        try l.finishRun(run.id)
        #expect(try l.openRun().id != run.id)
    }

    @Test func aCompleteManifestIsNeverChangedAndPendingFilesMoveToTheNextRun() throws {
        let l = try ledger()
        let r1 = try l.openRun()
        #expect(try l.assign(run: r1.id, device: "wt-a", host: "h", remotePath: "/data/1.raw", sha256: "s1", entry: "one"))
        #expect(try l.assign(run: r1.id, device: "wt-a", host: "h", remotePath: "/data/2.raw", sha256: "s2", entry: "two"))
        try l.recordComplete(run: r1.id, device: "wt-a")
        // A file found after the device's manifest was completed waits for the next run.
        #expect(try !l.assign(run: r1.id, device: "wt-a", host: "h", remotePath: "/data/3.raw", sha256: "s3", entry: "three"))
        #expect(try l.runEntries(run: r1.id, device: "wt-a") == ["one", "two"])
        #expect(try l.ingestedIn(device: "wt-a", remotePath: "/data/1.raw", sha256: "s1")?.complete == true)
        #expect(try l.ingestedIn(device: "wt-a", remotePath: "/data/3.raw", sha256: "s3") == nil)
        try l.finishRun(r1.id)

        let r2 = try l.openRun()
        // Listed by r1's complete manifest: stays there.
        try l.assign(run: r2.id, device: "wt-a", host: "h", remotePath: "/data/1.raw", sha256: "s1", entry: "moved?")
        try l.assign(run: r2.id, device: "wt-a", host: "h", remotePath: "/data/3.raw", sha256: "s3", entry: "three")
        #expect(try l.runEntries(run: r1.id, device: "wt-a") == ["one", "two"])
        #expect(try l.runEntries(run: r2.id, device: "wt-a") == ["three"])
        // A file pending in a run that never completed its device moves to the current run.
        try l.assign(run: r2.id, device: "wt-b", host: "h", remotePath: "/data/x.csv", sha256: "sx", entry: "x")
        try l.finishRun(r2.id)
        let r3 = try l.openRun()
        try l.assign(run: r3.id, device: "wt-b", host: "h", remotePath: "/data/x.csv", sha256: "sx", entry: "x3")
        #expect(try l.runEntries(run: r2.id, device: "wt-b").isEmpty)
        #expect(try l.runEntries(run: r3.id, device: "wt-b") == ["x3"])
        // Unlisting what a manifest found complete in S3 does not hold.
        try l.release(run: r3.id, device: "wt-b", keeping: [])
        #expect(try l.runEntries(run: r3.id, device: "wt-b").isEmpty)
    }

    @Test func manifestsHaveTheirOwnFolderPerRunAndAreDeterministic() throws {
        #expect(Manifest.folder(prefix: "raw", run: "20261122T050535Z-ecc4", device: "wt-a") == "raw/_runs/20261122T050535Z-ecc4/wt-a/")
        #expect(Manifest.folder(prefix: "", run: "r", device: "wt-a") == "_runs/r/wt-a/")
        let entry = Manifest.Entry(
            name: "1.raw", remotePath: "/data/1.raw", size: 6, mtime: 1, sha256: "s",
            derivative: .init(name: "1.flac", size: 4, sha256: "d", codec: "flac", parameters: "-5", flacMd5: "m"),
            object: .init(key: "raw/2026-11-22/wt-a/1.flac", size: 4, sha256: "d", etag: "e"))
        let m = Manifest(schemaVersion: 1, runId: "r", runStartedAt: "t", device: "wt-a", host: "h", bucket: "b", files: [entry])
        let bytes = try m.encoded()
        #expect(try m.encoded() == bytes)
        #expect(try Manifest.decode(bytes) == m)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(
            text.contains("\"flac_md5\" : \"m\"") && text.contains("\"schema_version\" : 1") && text.contains("raw/2026-11-22/wt-a/1.flac"))
    }

    @Test func targetsTakeAnOptionalPort() throws {
        #expect(try TagTarget.parse("wt-1a2b3c4d") == TagTarget(address: "wt-1a2b3c4d", port: nil, name: "wt-1a2b3c4d"))
        #expect(try TagTarget.parse("10.0.0.5:2222") == TagTarget(address: "10.0.0.5", port: 2222, name: nil))
        #expect(try TagTarget.parse("[fe80::1]:22") == TagTarget(address: "fe80::1", port: 22, name: nil))
        #expect(try TagTarget.parse("fe80::1") == TagTarget(address: "fe80::1", port: nil, name: nil))
        #expect(throws: UsageError.self) { try TagTarget.parse("10.0.0.5:0") }
        #expect(throws: UsageError.self) { try TagTarget.parse("10.0.0.5:ssh") }
        #expect(throws: UsageError.self) { try TagTarget.parse(":22") }
    }

    @Test func stagingBudgetBlocksUntilReleasedButLetsOneFileThrough() async throws {
        let budget = StagingBudget(limit: 100)
        budget.reserve(500)  // larger than the budget, alone: goes through
        let waited = Atomic(false)
        let t = Thread {
            budget.reserve(10)
            waited.set(true)
        }
        t.start()
        try await Task.sleep(for: .milliseconds(200))
        #expect(!waited.value)
        budget.release(500)
        for _ in 0..<100 where !waited.value { try await Task.sleep(for: .milliseconds(10)) }
        #expect(waited.value)
    }
}

/// A flag shared with a thread.
final class Atomic<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var v: T
    init(_ v: T) { self.v = v }
    var value: T { lock.withLock { v } }
    func set(_ n: T) { lock.withLock { v = n } }
}
