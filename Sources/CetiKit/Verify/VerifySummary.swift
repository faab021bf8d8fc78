import Foundation

/// What `ceti verify` found: how much it checked, and every mismatch.
public struct VerifySummary: Sendable, Encodable {
    /// One thing that is not as the ledger recorded it.
    public struct Problem: Sendable, Encodable, Equatable {
        public enum Kind: String, Sendable, Encodable {
            /// S3 no longer holds the object.
            case missing
            /// S3 holds other content under the key (size or ETag differ).
            case changed
            /// Size and ETag agree but x-amz-meta-sha256 does not.
            case metadata
            /// --deep: the object's bytes do not hash to the recorded SHA-256.
            case corrupt
            /// A backup copy is gone, or differs in size or (--deep) SHA-256.
            case backup
            /// The local file an object was made from (still in staging) differs from it.
            case local
        }
        public var kind: Kind
        /// s3://bucket/key, or the backup's path.
        public var what: String
        public var detail: String
    }

    public var bucket: String
    public var deep: Bool
    public var objects = 0
    public var bytes: Int64 = 0
    public var backups = 0
    /// Local files of the objects still on disk, checked against them.
    public var localCopies = 0
    public var problems: [Problem] = []

    public var exitCode: Int32 { problems.isEmpty ? 0 : 1 }

    public var line: String {
        let what =
            "\(objects) object(s) (\(ByteSize.format(bytes))) in s3://\(bucket)"
            + (backups > 0 ? ", \(backups) backup copies" : "") + (localCopies > 0 ? ", \(localCopies) local copies" : "")
        let how = deep ? "read back and hashed" : "checked (size, ETag, x-amz-meta-sha256)"
        if problems.isEmpty { return "verify: \(what) \(how): all as recorded" }
        return "verify: \(what) \(how): \(problems.count) problem(s) listed above"
    }
}

extension VerifySummary: RunSummary {}
