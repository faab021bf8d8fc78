import Foundation

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

extension LocalFile {
    /// The file at `path` in this one's folder (its FLAC or gzip, or its original): the same
    /// device, its own name in `relativePath`; the fingerprint given, else this one's.
    func sibling(_ path: String, fingerprint: FileFingerprint? = nil) -> LocalFile {
        let folder = relativePath.dropLast((self.path as NSString).lastPathComponent.count)
        return LocalFile(
            path: path, device: device, relativePath: folder + (path as NSString).lastPathComponent,
            fingerprint: fingerprint ?? self.fingerprint)
    }
}
