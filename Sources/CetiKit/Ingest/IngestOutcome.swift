/// One tag file's way through ingest.
public struct IngestFileOutcome: Sendable, Codable, Equatable {
    public enum Action: String, Sendable, Codable {
        /// Compressed (or taken as it was), uploaded and verified, listed in this run's manifest.
        case ingested
        /// Already listed by a complete manifest of an earlier run.
        case alreadyIngested = "already-ingested"
        /// Pulled, verified, compressed and backed up; its upload waits in the ledger for S3.
        case queued
        case failed
    }
    public var action: Action
    public var device: String
    public var name: String
    public var size: Int64
    /// The FLAC or gzip uploaded in its place.
    public var derivative: String? = nil
    public var key: String? = nil
    /// What s3upload did (uploaded, resumed, present, skipped).
    public var upload: String? = nil
    public var backup: String? = nil
    public var message: String? = nil
    /// The bytes waiting for S3 (its derivative's, when it has one).
    public var queuedBytes: Int64? = nil
    /// Recording QC of the file (judged); in the manifest and the tag's verdict, not in --json's
    /// file list (its envelopes would swamp it).
    public var qc: FileQC? = nil

    enum CodingKeys: String, CodingKey {
        case action, device, name, size, derivative, key, upload, backup, message, queuedBytes
    }
}

/// One tag's ingest.
public struct IngestTagReport: Sendable, Codable {
    public var tag: String
    public var address: String
    /// The pull, file by file (pulled, skipped, still being written, failed).
    public var pulled: [PullOutcome] = []
    public var files: [IngestFileOutcome] = []
    /// `s3://bucket/key` of this run's manifest for the tag, once its `_COMPLETE` is written.
    public var manifest: String? = nil
    public var cleaned: [CleanOutcome] = []
    public var error: String? = nil
    /// This target reached a tag another target of the run pulled (same hostname and host key).
    public var duplicateOf: String? = nil
    /// Recording QC over the files of this run: the verdict, problems and timeline.
    public var qc: DeviceQC? = nil

    public var failed: Bool {
        error != nil || pulled.contains { $0.action == .failed } || files.contains { $0.action == .failed }
    }
}

public struct IngestSummary: Sendable, Codable, RunSummary {
    public var runId: String?
    public var resumed: Bool
    public var bucket: String
    public var dryRun: Bool
    public var tags: [IngestTagReport]
    public var seconds: Double
    public var bytesPulled: Int64
    public var bytesSent: Int64
    /// --qc-strict: a tag whose QC verdict is `bad` ends the run with `qcBad`.
    public var qcStrict = false

    /// Files done locally whose upload waits for S3.
    public var queued: [IngestFileOutcome] { tags.flatMap(\.files).filter { $0.action == .queued } }

    /// 0 all done; 1 a failure (each listed); 4 (--qc-strict) a tag recorded badly; 3 done
    /// locally, uploads waiting for S3.
    public var exitCode: Int32 {
        if tags.contains(where: \.failed) { return 1 }
        if qcStrict && tags.contains(where: { $0.qc?.verdict == .bad }) { return IngestSummary.qcBad }
        return queued.isEmpty ? 0 : IngestSummary.uploadPending
    }

    /// The exit status of a run that did everything it could without S3 (README "Exit status").
    public static let uploadPending: Int32 = 3
    /// With --qc-strict: a tag's QC verdict is `bad` (and nothing failed).
    public static let qcBad: Int32 = 4

    /// "; QC: wt-1 bad, wt-2 warn, 3 ok" (each tag not ok named).
    var qcLine: String {
        let judged = tags.compactMap { t in t.qc.map { (t.tag, $0.verdict) } }
        guard !judged.isEmpty else { return "" }
        let named = judged.filter { $0.1 != .ok }.sorted { ($0.1, $1.0) > ($1.1, $0.0) }.map { "\($0.0) \($0.1.rawValue)" }
        let ok = judged.count - named.count
        return "; QC: " + (named + (ok > 0 ? ["\(ok) ok"] : [])).joined(separator: ", ")
    }

    public var line: String {
        let pulled = tags.flatMap(\.pulled)
        if dryRun {
            return "dry run: \(tags.count) tag(s), \(pulled.filter { $0.action == .wouldPull }.count) file(s) to pull, "
                + "\(pulled.filter { $0.action == .skipped }.count) already pulled"
        }
        let files = tags.flatMap(\.files)
        func n(_ a: IngestFileOutcome.Action) -> Int { files.filter { $0.action == a }.count }
        let failedTags = tags.filter(\.failed).count
        let writing = pulled.filter { $0.action == .stillWriting }.count
        let cleaned = tags.flatMap(\.cleaned).filter { $0.action == .deleted }.count
        let manifests = tags.filter { $0.manifest != nil }.count
        return "run \(runId ?? "-")\(resumed ? " (resumed)" : ""): \(tags.count) tag(s), "
            + (manifests > 0 ? "\(manifests) manifest(s) complete; " : "no new manifest; ")
            + "\(n(.ingested)) file(s) ingested, \(n(.alreadyIngested)) already ingested, \(n(.failed) + pulled.filter { $0.action == .failed }.count) failed"
            + (writing > 0 ? ", \(writing) still being written" : "")
            + (cleaned > 0 ? ", \(cleaned) deleted on the tags" : "")
            + "; \(ByteSize.format(bytesPulled)) pulled, \(ByteSize.format(bytesSent)) sent in \(String(format: "%.1f", seconds)) s"
            + (failedTags > 0 ? "; \(failedTags) tag(s) with failures" : "")
            + qcLine
            + (queued.isEmpty
                ? ""
                : "; \(queued.count) file(s) (\(ByteSize.format(queued.reduce(0) { $0 + ($1.queuedBytes ?? $1.size) }))) "
                    + "queued for S3: rerun `ceti ingest` (no tag needed) when the uplink is back")
    }
}
