/// `ceti ingest`: which tags, and the options of each step it chains.
public struct IngestOptions: Sendable {
    /// Logins, staging (`dataDir`), remote verification; its `clean` stays off: ingest cleans last.
    public var pull: PullOptions
    /// Raw layout, levels, parallel files (`directories` unused).
    public var compress: CompressOptions
    /// Bucket, keys, transfers (`directories` unused).
    public var upload: UploadOptions
    /// Tags by name or address; empty: discover them on `subnets`.
    public var targets: [String] = []
    public var subnets: [Subnet] = []
    /// Wipe each tag of the files proven uploaded, after its manifest is complete.
    public var clean = false
    /// Verified copies of what was uploaded, in DIR/<local date>/<device>/.
    public var backupDir: String?
    /// Pause pulling while staging holds more than this not yet uploaded.
    public var maxStaging: Int64?
    public var dryRun = false

    public init(pull: PullOptions, compress: CompressOptions, upload: UploadOptions) {
        self.pull = pull
        self.compress = compress
        self.upload = upload
    }
}
