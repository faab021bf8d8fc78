import Foundation
import Testing

@testable import CetiKit

/// A boat in one process: memory tags and a memory object store (with the real retrying layer
/// around it), a real staging folder, ledger, FLAC encoder and gzip, wired through
/// `IngestRun.execute(_:context:)` exactly as `ceti ingest` wires S3 and SSH.
final class Boat: @unchecked Sendable {
    static let bucket = "field"
    let dir: String
    let store = MemoryObjectStore(buckets: [Boat.bucket])
    let tags: [MemoryTag]
    var options: IngestOptions
    /// The tag's originals, by name, as they were before anything ran.
    let originals: [String: [UInt8]]

    /// One tag `wt-0a1b2c3d` with a raw recording (3 channels, 16-bit: 6-byte frames), a sensor
    /// CSV, a FLAC written by the firmware and a log; `rawFrames` sets the recording's length.
    convenience init(rawFrames: Int = 20_000, noiseBits: Int = 6) throws {
        let tag = MemoryTag(hostname: "wt-0a1b2c3d")
        var files: [String: [UInt8]] = [:]
        files["1700000000000.raw"] = Boat.pcm(frames: rawFrames, noiseBits: noiseBits)
        files["sensors.csv"] = Array((0..<2_000).map { "\($0),\(1000 + $0 % 17),\(20 + $0 % 3)\n" }.joined().utf8)
        files["1700000100000.flac"] = Boat.noise(count: 50_000, seed: 7)
        files["ceti.log"] = Array("boot\nrecording\n".utf8)
        for (name, bytes) in files { tag.add(name, bytes: bytes) }
        try self.init(tags: [tag], originals: files)
    }

    init(tags: [MemoryTag], originals: [String: [UInt8]]) throws {
        self.tags = tags
        self.originals = originals
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-boat-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir + "/staging", withIntermediateDirectories: true)
        let ledger = dir + "/ledger.sqlite"
        var pull = PullOptions(
            dataDir: dir + "/staging", login: SSHLogin(user: "cetitag", password: "x", identity: nil),
            knownHostsPath: dir + "/known_hosts", ledgerPath: ledger)
        pull.jobs = 2
        let compress = CompressOptions(directories: [], ledgerPath: ledger, jobs: 2)
        var upload = UploadOptions(
            directories: [], bucket: Boat.bucket, keyTemplate: try KeyTemplate(KeyTemplate.default), ledgerPath: ledger)
        upload.jobs = 2
        options = IngestOptions(pull: pull, compress: compress, upload: upload)
        options.targets = tags.map(\.hostname)
        options.clean = true
        options.s3RetryDelay = 0.01
        options.s3Patience = 0
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    var tag: MemoryTag { tags[0] }

    /// `ceti ingest` once, retries without waiting. Throws what the command would exit 2 on.
    @discardableResult
    func ingest(ledger: Ledger? = nil, reachable: [MemoryTag]? = nil) async throws -> IngestSummary {
        var context = IngestRun.Context(
            store: RetryingStore(store, policy: RetryPolicy(maxAttempts: 3, baseDelay: 0, maxDelay: 0)),
            tags: MemoryTagConnector(reachable ?? tags), ledger: ledger)
        context.probe = store
        return try await IngestRun.execute(options, context: context, console: Console(verbosity: .quiet))
    }

    func staging(_ device: String = "wt-0a1b2c3d") -> String { dir + "/staging/" + device }

    func ledger() throws -> Ledger { try Ledger(path: options.pull.ledgerPath) }

    /// Big-endian 16-bit PCM: a tone plus noise (`noiseBits` of it) on three channels.
    static func pcm(frames: Int, noiseBits: Int = 6) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(frames * 6)
        var x: UInt32 = 1
        for i in 0..<frames {
            for c in 0..<3 {
                x = x &* 1_664_525 &+ 1_013_904_223
                let v = Int16(truncatingIfNeeded: Int(3000 * sin(Double(i * (c + 1)) / 40)) + Int(x >> (32 - noiseBits)))
                out += [UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
            }
        }
        return out
    }

    static func noise(count: Int, seed: UInt32) -> [UInt8] {
        var x = seed
        return (0..<count).map { _ in
            x = x &* 1_664_525 &+ 1_013_904_223
            return UInt8(truncatingIfNeeded: x >> 24)
        }
    }

    /// The object holding a tag file: its key ends in the file's name or its derivative's.
    func object(for name: String) -> [UInt8]? {
        let device = tag.hostname
        let wanted: Set = [name, String(name.dropLast(4)) + ".flac", name + ".gz"]
        let key = store.keys(bucket: Boat.bucket).first {
            $0.contains("/\(device)/") && wanted.contains(($0 as NSString).lastPathComponent)
        }
        return key.flatMap { store.object(bucket: Boat.bucket, key: $0)?.bytes }
    }

    /// The complete manifest of the device, if `_COMPLETE` is written beside it.
    func manifests(_ device: String = "wt-0a1b2c3d") throws -> [Manifest] {
        let keys = store.keys(bucket: Boat.bucket)
        return try keys.filter { $0.hasSuffix("/\(device)/\(Manifest.completeMarker)") }.map {
            let folder = String($0.dropLast(Manifest.completeMarker.count))
            return try Manifest.decode(try #require(store.object(bucket: Boat.bucket, key: folder + Manifest.fileName)).bytes)
        }
    }

    /// What must hold after a run that went through: every original is listed by one complete
    /// manifest with its own SHA-256; every listed object holds the recorded bytes; an object
    /// holding the original itself (or its gzip, inflated) equals the original; the tag is empty.
    func expectDelivered(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let listed = try manifests().flatMap(\.files)
        #expect(Set(listed.map(\.name)) == Set(originals.keys), sourceLocation: sourceLocation)
        #expect(listed.count == originals.count, "each file in exactly one manifest", sourceLocation: sourceLocation)
        for e in listed {
            #expect(e.sha256 == Digest.sha256(originals[e.name] ?? []).hex, sourceLocation: sourceLocation)
            let held = try #require(store.object(bucket: Boat.bucket, key: e.object.key), sourceLocation: sourceLocation)
            #expect(Digest.sha256(held.bytes).hex == e.object.sha256 && held.etag == e.object.etag, sourceLocation: sourceLocation)
            if e.derivative == nil {
                #expect(held.bytes == originals[e.name], sourceLocation: sourceLocation)
            } else {
                #expect(e.derivative?.sha256 == e.object.sha256, sourceLocation: sourceLocation)
            }
        }
        #expect(tag.names.isEmpty, "the tag is wiped once everything is proven", sourceLocation: sourceLocation)
    }

    /// The custody rule, checked after any run: a file gone from the tag has its own bytes (or its
    /// derivative) in S3 and in a complete or pending manifest entry of the ledger.
    func expectNothingLost(sourceLocation: SourceLocation = #_sourceLocation) throws {
        for name in tag.unlinked.map({ ($0 as NSString).lastPathComponent }) {
            #expect(object(for: name) != nil, "\(name) was deleted from the tag without its object", sourceLocation: sourceLocation)
        }
    }
}

@Suite(.serialized) struct IngestPipelineTests {
    static let fatal = S3Error.accessDenied(bucket: Boat.bucket, code: "AccessDenied", credentialSource: "test", endpoint: "memory")
    static let flaky = S3Error.transient(TransientFailure(operation: "any", key: "k", network: "connection reset by peer"))

    @Test func aTagIsPulledCompressedUploadedListedAndWipedInOneRun() async throws {
        let boat = try Boat()
        let summary = try await boat.ingest()
        #expect(summary.exitCode == 0)
        #expect(summary.tags.first?.files.map(\.action) == Array(repeating: .ingested, count: 4))
        try boat.expectDelivered()
        // The raw went up as FLAC, the CSV as gzip; what the tag wrote as FLAC went as it was.
        let files = try #require(boat.manifests().first?.files)
        #expect(
            Dictionary(uniqueKeysWithValues: files.map { ($0.name, $0.derivative?.codec) }) == [
                "1700000000000.raw": "flac", "sensors.csv": "gzip", "1700000100000.flac": nil, "ceti.log": nil,
            ])
        // The originals of the outputs are gone from staging; the outputs stay.
        let staged = try FileManager.default.contentsOfDirectory(atPath: boat.staging()).filter { !$0.hasPrefix(".") }.sorted()
        #expect(staged == ["1700000000000.flac", "1700000100000.flac", "ceti.log", "sensors.csv.gz"])

        // A second run finds everything done: nothing pulled, nothing sent.
        let sent = boat.store.count("PutObject") + boat.store.count("UploadPart")
        boat.tag.add("later.csv", bytes: Array("t,v\n1,2\n".utf8))
        let again = try await boat.ingest()
        #expect(again.exitCode == 0 && again.tags.first?.files.map(\.name) == ["later.csv"])
        #expect(boat.store.count("PutObject") + boat.store.count("UploadPart") == sent + 3, "later.csv.gz, a manifest, _COMPLETE")
    }

    /// Each output is read from disk at most twice (the verification read that also hashes it for
    /// the upload, then the send), counted by the kernel (inotify); the ledger runs a bounded number
    /// of statements per file.
    @Test func eachOutputIsReadTwiceAtMostAndTheLedgerABoundedNumberOfTimes() async throws {
        // 3.6 MB of noisy raw: a FLAC of a few 1 MiB parts, so the multipart path is measured.
        let boat = try Boat(rawFrames: 600_000, noiseBits: 14)
        boat.options.upload.partSize = 1 << 20
        boat.store.minPartSize = 1 << 20
        try FileManager.default.createDirectory(atPath: boat.staging(), withIntermediateDirectories: true)
        let reads = try FileReadCounter(directory: boat.staging())
        let ledger = try boat.ledger()
        let before = ledger.statements
        let summary = try await boat.ingest(ledger: ledger)
        #expect(summary.exitCode == 0)
        try boat.expectDelivered()
        #expect(boat.store.count("UploadPart") >= 2)
        let counts = reads.reads()
        for output in ["1700000000000.flac", "sensors.csv.gz", "1700000100000.flac", "ceti.log"] {
            let n = (counts[output] ?? 0) + (counts[output + ".part"] ?? 0)
            #expect(n >= 1 && n <= 2, "\(output) read \(n) times")
        }
        // README "Layout": at most 26 ledger statements per ingested file (24 measured, QC's record included).
        let perFile = Double(ledger.statements - before) / 4
        #expect(perFile <= 26, "\(perFile) ledger statements per file")
    }

    // MARK: kills, transient and fatal store errors

    /// How many requests a whole clean run makes.
    static func requestsOfACleanRun() async throws -> Int {
        let boat = try Boat()
        try await boat.ingest()
        return boat.store.requests.count
    }

    /// The run stops at every request in turn (a fatal answer: what ends the process, as a kill
    /// would, with everything before it done and nothing after), then reruns: every time the tag
    /// is delivered whole, and nothing leaves the tag before its own object is in the store.
    @Test func aRunStoppedAtAnyRequestIsFinishedByTheRerun() async throws {
        let total = try await Self.requestsOfACleanRun()
        #expect(total > 10)
        for n in 1...total {
            let boat = try Boat()
            boat.store.fail(Self.fatal, onRequest: n)
            await #expect(throws: S3Error.self, "stopped at request \(n)") { try await boat.ingest() }
            try boat.expectNothingLost()
            // A manifest with its _COMPLETE only ever lists objects that are there.
            for e in try boat.manifests().flatMap(\.files) {
                #expect(boat.store.object(bucket: Boat.bucket, key: e.object.key)?.etag == e.object.etag, "request \(n)")
            }
            let rerun = try await boat.ingest()
            #expect(rerun.exitCode == 0, "rerun after a stop at request \(n)")
            try boat.expectDelivered()
        }
    }

    /// A request that fails once in a way that may pass (a reset connection) is retried by the
    /// retrying layer, whichever it is: one run delivers everything, one request more.
    @Test func aTransientFailureAtAnyRequestIsRetried() async throws {
        let total = try await Self.requestsOfACleanRun()
        for n in 1...total {
            let boat = try Boat()
            // The first request asks whether S3 is there at all (one attempt): failing, it sends
            // the run into waiting for S3, which asks again at once and goes on.
            boat.options.s3Patience = 10
            boat.store.fail(Self.flaky, onRequest: n)
            let summary = try await boat.ingest()
            #expect(summary.exitCode == 0, "transient failure at request \(n)")
            try boat.expectDelivered()
            #expect(boat.store.requests.count == total + 1, "one retry for request \(n)")
        }
    }

    /// A write that lands but whose answer is lost: the retry (or the rerun) must recognise it
    /// as done — a create-only PUT meets its own object — and never duplicate or lose anything.
    @Test func aWriteWhoseAnswerIsLostIsRecognisedAsDone() async throws {
        let total = try await Self.requestsOfACleanRun()
        for n in 1...total {
            let boat = try Boat()
            boat.store.failAfterEffect(onRequest: n)
            let first = try await boat.ingest()
            try boat.expectNothingLost()
            if first.exitCode != 0 {
                let rerun = try await boat.ingest()
                #expect(rerun.exitCode == 0, "rerun after a lost answer at request \(n)")
            }
            try boat.expectDelivered()
            #expect(boat.store.openUploads(bucket: Boat.bucket).isEmpty, "no multipart upload left open (request \(n))")
        }
    }

    /// A refused credential stops the run at once (what the command exits 2 on); nothing is
    /// deleted from the tag, and the rerun with good credentials finishes it.
    @Test func aFatalErrorStopsTheRunAndTouchesNothingOnTheTag() async throws {
        let boat = try Boat()
        boat.store.fail(Self.fatal, onRequest: 1, operation: "PutObject")
        await #expect(throws: S3Error.self) { try await boat.ingest() }
        #expect(boat.tag.unlinked.isEmpty)
        #expect(boat.store.count("PutObject") <= 2, "no upload started after the refusal (two run at once)")
        try await boat.ingest()
        try boat.expectDelivered()
    }

    /// The tag's connection drops in the middle of the recording: the other files are delivered
    /// and wiped on their own proof, the recording stays on the tag; the rerun resumes its
    /// partial download (only the rest crosses the WiFi) and completes the manifest.
    @Test func aDroppedTagConnectionResumesAndTheOthersAreNotHeldBack() async throws {
        let boat = try Boat(rawFrames: 50_000)
        let raw = "1700000000000.raw"
        boat.tag.dropAfter(bytes: 100_000, of: raw)
        let first = try await boat.ingest()
        #expect(first.exitCode == 1)
        // The log comes after the recording, on the connection that dropped: it waits too.
        #expect(boat.tag.names == [raw, "ceti.log"], "the proven files were wiped, the recording kept")
        #expect(try boat.manifests().isEmpty, "no manifest with a file missing")
        let before = boat.tag.bytesRead
        let rerun = try await boat.ingest()
        #expect(rerun.exitCode == 0)
        let log = Int64(boat.originals["ceti.log"]!.count)
        #expect(boat.tag.bytesRead - before == Int64(boat.originals[raw]!.count) - 100_000 + log, "only the rest was read")
        try boat.expectDelivered()
    }

    // MARK: streaming what goes up as it is

    /// A boat with one large FLAC the firmware wrote (3 parts of 1 MiB) and a small sensor CSV.
    static func streamingBoat() throws -> Boat {
        let tag = MemoryTag(hostname: "wt-0a1b2c3d")
        let files: [String: [UInt8]] = [
            "1700000000000.flac": Boat.noise(count: 2_600_000, seed: 3),
            "data_battery.csv": Array(String(repeating: "1700000000000,3.91\n", count: 2_000).utf8),
        ]
        for (name, bytes) in files { tag.add(name, bytes: bytes) }
        let boat = try Boat(tags: [tag], originals: files)
        boat.options.upload.partSize = 1 << 20
        boat.store.minPartSize = 1 << 20
        return boat
    }

    /// A large FLAC is sent part by part while it is pulled, under the tag's own SHA-256, and the
    /// object is made only once the copy is confirmed: each part goes once, the tag hashes the
    /// file once, and the object is the tag's bytes.
    @Test func aLargeFlacIsStreamedWhilePulledAndCompletedOnceConfirmed() async throws {
        let boat = try Self.streamingBoat()
        let flac = "1700000000000.flac"
        try FileManager.default.createDirectory(atPath: boat.staging(), withIntermediateDirectories: true)
        let reads = try FileReadCounter(directory: boat.staging())
        let summary = try await boat.ingest()
        #expect(summary.exitCode == 0)
        try boat.expectDelivered()
        // Each part was read once, to hash and send it (under the partial's name or, once renamed,
        // the file's); completing the upload reads no byte of it again.
        let counts = reads.reads()
        #expect((counts[flac] ?? 0) + (counts[NameCodec.partialName(for: flac)] ?? 0) == 3, "\(counts)")
        #expect(boat.store.count("CreateMultipartUpload") == 1 && boat.store.count("UploadPart") == 3, "each part sent once")
        let key = try #require(boat.store.keys(bucket: Boat.bucket).first { $0.hasSuffix("/" + flac) })
        #expect(boat.store.object(bucket: Boat.bucket, key: key)?.metadata["sha256"] == Digest.sha256(boat.originals[flac]!).hex)
        // The tag was asked for the FLAC's checksum once (ahead of its end), not again to confirm it.
        // (The clean asks once more, just before the delete, in one command with the CSV.)
        #expect(boat.tag.commands.filter { $0.contains("sha256sum") && $0.contains("'1700000000000.flac\\000'") }.count == 1)
        // The small sensor file first, then the stream.
        let pulled = try boat.ledger().rows("SELECT path FROM copies ORDER BY id").map { (try $0.text(0) as NSString).lastPathComponent }
        #expect(pulled == ["data_battery.csv", flac])
        #expect(
            IngestPipeline.order(
                RemoteFile(name: "b.flac", size: 5 << 20, mtime: 0, isRegular: true, isDirectory: false), streaming: 1 << 20)
                < IngestPipeline.order(
                    RemoteFile(name: "a.csv", size: 2 << 20, mtime: 0, isRegular: true, isDirectory: false), streaming: 1 << 20),
            "what streams goes before what must be whole")
    }

    /// The pull of a streamed file drops midway: the parts already sent stay, the rerun resumes
    /// the download and the upload, and no part is sent twice.
    @Test func aStreamedFileWhosePullDropsResumesBothHalves() async throws {
        let boat = try Self.streamingBoat()
        let flac = "1700000000000.flac"
        boat.tag.dropAfter(bytes: 2_200_000, of: flac)
        let first = try await boat.ingest()
        #expect(first.exitCode == 1)
        #expect(boat.tag.names == [flac] && boat.store.keys(bucket: Boat.bucket).allSatisfy { !$0.hasSuffix(flac) })
        #expect(boat.store.count("UploadPart") == 2, "the two parts on disk went before the drop")
        let rerun = try await boat.ingest()
        #expect(rerun.exitCode == 0)
        try boat.expectDelivered()
        #expect(boat.store.count("UploadPart") == 3 && boat.store.count("CreateMultipartUpload") == 1)
    }

    /// The link corrupts a byte of a streamed file: the tag disowns the copy, nothing of it
    /// becomes an object, and the next run delivers the tag's bytes, sending again only the part
    /// whose bytes differed.
    @Test func aStreamedFileTheTagDisownsNeverBecomesAnObject() async throws {
        let boat = try Self.streamingBoat()
        let flac = "1700000000000.flac"
        boat.tag.garbleInTransit(flac, at: 100)
        let first = try await boat.ingest()
        #expect(first.exitCode == 1)
        #expect(boat.store.keys(bucket: Boat.bucket).allSatisfy { !$0.hasSuffix(flac) }, "no object of disowned bytes")
        #expect(boat.tag.names == [flac])
        let rerun = try await boat.ingest()
        #expect(rerun.exitCode == 0)
        try boat.expectDelivered()
        // Part 1 held the garbled byte: the only one that may go twice (parts sent before the
        // disown are kept when their MD5 matches the verified copy).
        #expect(boat.store.count("UploadPart") <= 4)
    }

    // MARK: manifests are written create-only

    /// Another writer puts a different manifest under this run's key first (a copy of the ledger
    /// resuming the same run elsewhere): exactly one write wins; this run reports it, leaves that
    /// manifest as it is, writes no `_COMPLETE` and cleans nothing.
    @Test func aManifestAnotherWriterPutFirstIsNeverOverwritten() async throws {
        let boat = try Boat()
        let other = Array(#"{"schema_version":1,"written_by":"another laptop"}"#.utf8)
        let store = boat.store
        store.beforePut.value = { key in
            if key.hasSuffix("/" + Manifest.fileName), store.object(bucket: Boat.bucket, key: key) == nil {
                store.insert(bucket: Boat.bucket, key: key, bytes: other)
            }
        }
        let summary = try await boat.ingest()
        #expect(summary.exitCode == 1)
        #expect(summary.tags.first?.error?.contains("already written by another ceti") == true)
        let keys = store.keys(bucket: Boat.bucket)
        let manifest = try #require(keys.first { $0.hasSuffix("/" + Manifest.fileName) })
        #expect(store.object(bucket: Boat.bucket, key: manifest)?.bytes == other, "the other writer's manifest stands")
        #expect(!keys.contains { $0.hasSuffix("/" + Manifest.completeMarker) })
        #expect(boat.tag.names.count == 4, "nothing cleaned without this run's manifest")
    }

    // MARK: cleaning needs its own proof

    /// An object that vanished from S3 after its upload proves nothing: that file stays on the
    /// tag (said why), the others go.
    @Test func aFileWhoseObjectIsGoneFromS3StaysOnTheTag() async throws {
        let boat = try Boat()
        boat.options.clean = false
        try await boat.ingest()
        #expect(boat.tag.names.count == 4)
        let csv = try #require(boat.store.keys(bucket: Boat.bucket).first { $0.hasSuffix("/sensors.csv.gz") })
        boat.store.delete(bucket: Boat.bucket, key: csv)
        boat.options.clean = true
        let summary = try await boat.ingest()
        let cleaned = try #require(summary.tags.first?.cleaned)
        #expect(cleaned.filter { $0.action == .deleted }.map(\.name).sorted() == ["1700000000000.raw", "1700000100000.flac", "ceti.log"])
        let kept = try #require(cleaned.first { $0.name == "sensors.csv" })
        #expect(kept.action == .kept && kept.reason.contains("gone from S3"))
        #expect(boat.tag.names == ["sensors.csv"])
    }

    /// Another tag's identical bytes in the bucket prove nothing for this tag's file: when this
    /// tag's own upload of it fails, the file stays on this tag.
    @Test func anotherTagsIdenticalBytesAreNoProof() async throws {
        let shared = Boat.noise(count: 30_000, seed: 3)
        let a = MemoryTag(hostname: "wt-aaaaaaaa")
        let b = MemoryTag(hostname: "wt-bbbbbbbb")
        a.add("same.flac", bytes: shared)
        b.add("same.flac", bytes: shared)
        let boat = try Boat(tags: [a, b], originals: [:])
        boat.options.targets = ["wt-aaaaaaaa"]
        try await boat.ingest()
        #expect(a.names.isEmpty)
        // Tag b's own upload of the same bytes is refused (not retryable): no object of its own.
        boat.store.fail(
            .service(operation: "PutObject", key: "k", status: 400, code: "InvalidRequest", message: "refused"), onRequest: 1,
            operation: "PutObject")
        boat.options.targets = ["wt-bbbbbbbb"]
        let summary = try await boat.ingest()
        #expect(summary.exitCode == 1)
        let failed = summary.tags.flatMap(\.files).filter { $0.action == .failed }
        #expect(failed.count == 1 && failed[0].message?.contains("refused") == true)
        #expect(b.names.contains("same.flac"), "kept: only tag a's object holds these bytes")
        let kept = try #require(summary.tags.first?.cleaned.first { $0.name == "same.flac" })
        #expect(kept.action == .kept)
    }

    // MARK: offline first

    static let noRoute = S3Error.transient(TransientFailure(operation: "any", key: "k", network: "no route to host"))

    /// No uplink: the tag is pulled, verified and compressed all the same; nothing is deleted on
    /// it; the run ends with its uploads queued (exit 3). When S3 is back, a run with no tag in
    /// reach uploads the queue and writes the manifest, once; then a run with the tag cleans it.
    @Test func withoutS3TheTagIsOffloadedAndTheQueueWaitsForTheNextRun() async throws {
        let boat = try Boat()
        boat.store.offline = true
        let first = try await boat.ingest()
        #expect(first.exitCode == IngestSummary.uploadPending)
        #expect(first.queued.count == 4 && first.line.contains("4 file(s)") && first.line.contains("queued for S3"))
        #expect(boat.tag.unlinked.isEmpty, "nothing deleted without S3's word")
        let staged = try FileManager.default.contentsOfDirectory(atPath: boat.staging()).filter { !$0.hasPrefix(".") }.sorted()
        #expect(staged == ["1700000000000.flac", "1700000100000.flac", "ceti.log", "sensors.csv.gz"], "compressed while offline")
        #expect(boat.store.keys(bucket: Boat.bucket).isEmpty)

        boat.store.offline = false
        boat.options.targets = []
        let drained = try await boat.ingest(reachable: [])
        #expect(drained.exitCode == 0)
        #expect(drained.tags.map(\.tag) == ["wt-0a1b2c3d"] && drained.tags[0].manifest != nil)
        #expect(try boat.manifests().count == 1 && boat.manifests()[0].files.count == 4)
        #expect(boat.store.count("PutObject") == 2 + 4, "four files, one manifest, one _COMPLETE, each once")
        // The manifest names where the tag was reached, though no tag was in reach for this run.
        #expect(try boat.manifests()[0].host == "wt-0a1b2c3d")

        boat.options.targets = ["wt-0a1b2c3d"]
        let cleaning = try await boat.ingest()
        #expect(cleaning.exitCode == 0)
        try boat.expectDelivered()
        #expect(try boat.manifests().count == 1, "no second manifest")
    }

    /// S3 goes away in the middle of the uploads and comes back while the run still waits: the
    /// run finishes by itself, without a rerun.
    @Test func s3ThatComesBackWithinThePatienceIsWaitedFor() async throws {
        let boat = try Boat()
        boat.options.s3Patience = 30
        // After the bucket check, six requests in a row find no route: more than the retries
        // of one request, so the run sees S3 gone, waits, asks again and goes on.
        for n in 3...8 { boat.store.fail(Self.noRoute, onRequest: n) }
        let summary = try await boat.ingest()
        #expect(summary.exitCode == 0)
        try boat.expectDelivered()
    }

    /// A refusal while the run waits for S3 is what it always is: the end of the run (exit 2).
    @Test func aRefusalWhenS3ComesBackEndsTheRun() async throws {
        let boat = try Boat()
        boat.options.s3Patience = 30
        boat.store.offline = true
        let task = Task { try await boat.ingest() }
        try await Task.sleep(nanoseconds: 200_000_000)
        boat.store.fail(Self.fatal, onRequest: 1)
        boat.store.offline = false
        await #expect(throws: S3Error.self) { try await task.value }
        #expect(boat.tag.unlinked.isEmpty)
    }

    // MARK: the raw layout from the tag

    /// The FLAC STREAMINFO's bits per sample and sample rate (bytes 18–20 and 21–24 of a file that
    /// starts with STREAMINFO, as libFLAC writes it).
    static func streamInfo(_ flac: [UInt8]) -> (bits: Int, rate: Int, channels: Int) {
        let b = Array(flac[18..<22])
        let rate = (Int(b[0]) << 12) | (Int(b[1]) << 4) | (Int(b[2]) >> 4)
        let channels = ((Int(b[2]) >> 1) & 0x7) + 1
        let bits = (((Int(b[2]) & 1) << 4) | (Int(b[3]) >> 4)) + 1
        return (bits, rate, channels)
    }

    @Test func aRawIsEncodedWithTheLayoutItsTagsDataConfigGives() async throws {
        let tag = MemoryTag(hostname: "wt-0a1b2c3d")
        // 24-bit, 48 kHz, 3 channels: 9-byte frames (not a whole number of the 6-byte default).
        let pcm = Boat.noise(count: 9 * 30_001, seed: 5)
        let files: [String: [UInt8]] = [
            "data_config_1700000000000000.txt": Array("audio_bitdepth =: 24\naudio_sample_rate = 48 # KHz\n".utf8),
            "1700000100000.raw": pcm,
            "1700000200000.be.16bit.2ch.44100sps.bin": Boat.noise(count: 4 * 20_000, seed: 6),
        ]
        for (name, bytes) in files { tag.add(name, bytes: bytes) }
        let boat = try Boat(tags: [tag], originals: files)
        let summary = try await boat.ingest()
        #expect(summary.exitCode == 0)
        try boat.expectDelivered()
        let flac = try #require(boat.object(for: "1700000100000.raw"))
        #expect(Self.streamInfo(flac) == (24, 48_000, 3))
        let bin = try #require(boat.object(for: "1700000200000.be.16bit.2ch.44100sps.flac"))
        #expect(Self.streamInfo(bin) == (16, 44_100, 2))
        let entries = try #require(boat.manifests().first?.files)
        let raw = try #require(entries.first { $0.name == "1700000100000.raw" }?.derivative?.layout)
        #expect(
            raw
                == Manifest.Layout(
                    RawFormat(channels: 3, bitsPerSample: 24, sampleRate: 48_000, bigEndian: true, signed: true),
                    from: "data_config_1700000000000000.txt"))
        #expect(entries.first { $0.name.hasSuffix(".bin") }?.derivative?.layout?.from == "name")
    }

    // MARK: logs

    /// A log the tag writes on every login changes while it is pulled: no failure, the rest of the
    /// tag is delivered and wiped, the log waits for the next run, which takes it (freshly written
    /// or not: a log never settles).
    @Test func aLogThatChangesWhileItIsPulledFailsNothing() async throws {
        let boat = try Boat()
        boat.tag.changeDuringRead("ceti.log", to: Array("boot\nrecording\nlogin at 12:00\n".utf8))
        let first = try await boat.ingest()
        #expect(first.exitCode == 0)
        let log = try #require(first.tags.first?.pulled.first { $0.name == "ceti.log" })
        #expect(log.action == .stillWriting && log.message?.contains("every login") == true)
        #expect(try boat.manifests().first?.files.count == 3)
        #expect(boat.tag.names == ["ceti.log"])
        // Written a second ago (by the login itself): pulled all the same.
        boat.tag.add("ceti.log", bytes: Array("boot\nlogin\n".utf8), mtime: boat.tag.clock - 1)
        let second = try await boat.ingest()
        #expect(second.exitCode == 0 && second.tags.first?.files.map(\.name) == ["ceti.log"])
        #expect(try boat.manifests().count == 2 && boat.tag.names.isEmpty)
    }

    // MARK: order

    /// Sensor data before audio, whatever their sizes; smallest first within each; logs last.
    @Test func sensorDataGoesUpBeforeAudio() async throws {
        let tag = MemoryTag(hostname: "wt-0a1b2c3d")
        let files: [String: [UInt8]] = [
            "1700000000000.flac": Boat.noise(count: 20_000, seed: 1),
            "data_ecg_00.csv": Array(String(repeating: "1700000000000,512\n", count: 20_000).utf8),
            "data_tag_info_1.yaml": Array("tag: 1\n".utf8),
            "ceti.log": Array("boot\n".utf8),
        ]
        for (name, bytes) in files { tag.add(name, bytes: bytes) }
        let boat = try Boat(tags: [tag], originals: files)
        boat.options.upload.jobs = 1
        boat.options.compress.jobs = 1
        try await boat.ingest()
        try boat.expectDelivered()
        // The order they were pulled and recorded in.
        let ledger = try boat.ledger()
        let pulled = try ledger.rows("SELECT path FROM copies ORDER BY id").map { (try $0.text(0) as NSString).lastPathComponent }
        #expect(pulled == ["data_tag_info_1.yaml", "data_ecg_00.csv", "1700000000000.flac", "ceti.log"])
        #expect(
            IngestPipeline.order(RemoteFile(name: "a.CSV", size: 1 << 30, mtime: 0, isRegular: true, isDirectory: false))
                < IngestPipeline.order(RemoteFile(name: "b.raw", size: 1, mtime: 0, isRegular: true, isDirectory: false)))
    }
}
