/// What `ceti restore` reads and where it writes.
public struct RestoreOptions: Sendable {
    public var source: RestoreSource
    /// The folder the originals are written into (created when missing).
    public var directory: String
    /// Only the files whose original name matches one of these shell patterns (all when empty).
    public var only: [String] = []
    /// Files restored at once.
    public var jobs = 4
    /// Also keep each downloaded FLAC/gzip beside its original, under its own name.
    public var keepDerivatives = false
    /// The bucket holding the objects: default the one the manifest was read from (s3://), else
    /// the manifest's own.
    public var bucket: String?
    /// Say what would be downloaded (and what is already there); write nothing.
    public var dryRun = false

    public init(source: RestoreSource, directory: String) {
        self.source = source
        self.directory = directory
    }
}
