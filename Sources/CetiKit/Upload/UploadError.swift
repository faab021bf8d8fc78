/// Failures of one file's upload that are not S3's own errors.
public enum UploadError: Error, CustomStringConvertible {
    case etagMismatch(key: String, expected: String, got: String)
    case duplicateKey(key: String, other: String)
    case unreadable(path: String, message: String)
    /// A pulled copy or compressed output whose bytes are no longer those ceti verified.
    case changedSinceRecorded(path: String, origin: String, recorded: String, now: String)
    /// The key would fall among the runs' manifests.
    case keyInRunsFolder(key: String)

    public var description: String {
        switch self {
        case .etagMismatch(let key, let expected, let got):
            return "S3 stored \(key) with ETag \(got) but the local content gives \(expected): not verified, rerun to upload it again"
        case .duplicateKey(let key, let other):
            return "maps to the same key \(key) as \(other); upload the directories separately or change --key-template"
        case .unreadable(let path, let message):
            return "cannot read \(path): \(message)"
        case .changedSinceRecorded(let path, let origin, let recorded, let now):
            return "\(path.printable) changed since it was \(origin) (SHA-256 recorded \(recorded.prefix(16))…, now \(now.prefix(16))…): "
                + "not uploaded. Restore it from the device or the backup, or move it away and pull it again"
        case .keyInRunsFolder(let key):
            return "the key \(key) would fall among the runs' manifests (\(Manifest.runsFolder)/); change --key-template"
        }
    }
}
