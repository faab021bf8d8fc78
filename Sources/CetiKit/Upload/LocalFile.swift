/// A regular file found under one of the directories given to s3upload.
public struct LocalFile: Sendable, Equatable {
    /// Absolute path.
    public var path: String
    /// `{device}`: the first path component below the root, or "unknown-device" for a file directly in it.
    public var device: String
    /// `{path}`: the path below the device folder (or the file's name when it sits in the root).
    public var relativePath: String
    public var fingerprint: FileFingerprint
}
