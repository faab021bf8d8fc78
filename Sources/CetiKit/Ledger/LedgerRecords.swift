/// What identifies a local file's content without reading it: if none of these changed, the
/// hash recorded earlier still holds.
public struct FileFingerprint: Sendable, Equatable, Codable {
    public var size: Int64
    public var mtimeNanoseconds: Int64
    public var inode: UInt64

    public init(size: Int64, mtimeNanoseconds: Int64, inode: UInt64) {
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
        self.inode = inode
    }
}

/// A local file the ledger has seen, with its hash and the date it was first planned for upload.
public struct FileRecord: Sendable, Equatable {
    public var path: String
    public var fingerprint: FileFingerprint
    public var sha256: String?
    public var plannedDate: String
}

/// An S3 object that ceti uploaded or proved identical to a local file.
public struct ObjectRecord: Sendable, Equatable, Codable {
    public var bucket: String
    public var key: String
    public var device: String
    public var localPath: String
    public var size: Int64
    public var sha256: String
    public var etag: String
    public var partSize: Int64
    public var verifiedAt: String
}

/// A multipart upload that was started and not yet completed.
public struct UploadRecord: Sendable, Equatable {
    public var bucket: String
    public var key: String
    public var uploadID: String
    public var device: String
    public var localPath: String
    public var fingerprint: FileFingerprint
    public var sha256: String
    public var partSize: Int64
    public var startedAt: String
}

/// One part the server acknowledged.
public struct PartRecord: Sendable, Equatable {
    public var number: Int
    public var size: Int64
    public var md5: String
    public var etag: String
}

/// Per-device counts for `ceti status`.
public struct DeviceStatus: Sendable, Equatable, Codable {
    public var device: String
    public var verifiedObjects: Int = 0
    public var verifiedBytes: Int64 = 0
    public var inFlightUploads: Int = 0
    public var inFlightBytes: Int64 = 0
    public var failed: Int = 0
    public var lastVerifiedAt: String? = nil
    public var failures: [String] = []
    /// Files pulled or copied from the device (distinct device files with a verified local copy).
    public var pulledFiles: Int = 0
    public var pulledBytes: Int64 = 0
}

/// A file on a device and its verified local copy.
public struct CopyRecord: Sendable, Equatable, Codable {
    public var device: String
    public var remotePath: String
    public var size: Int64
    /// The device's mtime, seconds.
    public var mtime: Int64
    public var sha256: String
    public var localPath: String
    /// The device's own sha256sum agreed.
    public var remoteVerified: Bool
    public var verifiedAt: String
}

/// A verified compressed output of a local file.
public struct DerivativeRecord: Sendable, Equatable, Codable {
    public var inputPath: String
    public var inputSHA256: String
    public var inputSize: Int64
    public var outputPath: String
    public var outputSHA256: String
    public var outputSize: Int64
    /// "flac" or "gzip".
    public var codec: String
    /// The raw layout and level, e.g. `flac` flags to decode it back.
    public var parameters: String
    /// STREAMINFO MD5 of the PCM (FLAC only).
    public var flacMD5: String?
    public var verifiedAt: String
}
