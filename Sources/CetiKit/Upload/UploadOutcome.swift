/// What happened to one file in a run (or, with --dry-run, what would happen).
public struct UploadOutcome: Sendable, Codable, Equatable {
    public enum Action: String, Sendable, Codable {
        /// Sent with one PUT or a new multipart upload.
        case uploaded
        /// An interrupted multipart upload was finished.
        case resumed
        /// The ledger already proves this exact file is in S3; nothing was read or sent.
        case skipped
        /// S3 already held identical content (found by HEAD); recorded, not sent.
        case present
        /// S3 holds different content under the key and --overwrite was not given.
        case conflict
        /// Replaced different remote content (--overwrite).
        case overwritten
        case failed
        // --dry-run: what a real run would do.
        case wouldUpload = "would-upload"
        case wouldResume = "would-resume"
        case wouldOverwrite = "would-overwrite"
    }

    public var action: Action
    public var path: String
    public var device: String
    public var key: String
    public var size: Int64
    /// Bytes actually sent for this file in this run.
    public var sentBytes: Int64 = 0
    public var etag: String? = nil
    public var sha256: String? = nil
    public var message: String? = nil

    public var isFailure: Bool { action == .failed || action == .conflict }

    /// A file skipped because S3 confirmed the verified object the ledger holds for it.
    static func skipped(_ path: String, device: String, proof object: ObjectRecord, size: Int64) -> UploadOutcome {
        UploadOutcome(
            action: .skipped, path: path, device: device, key: object.key, size: size, etag: object.etag,
            sha256: object.sha256)
    }
}
