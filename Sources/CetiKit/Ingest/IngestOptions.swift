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
    /// Exit 4 when a tag's QC verdict is `bad` (README "Exit status"); QC itself is `compress.qc`.
    public var qcStrict = false
    /// Once every tag is pulled, how long uploads wait for an S3 that cannot be reached before
    /// the run ends with them queued (exit 3). While pulls go on, they wait as long as those.
    public var s3Patience: Double = 300
    /// The first wait between two asks of an unreachable S3 (doubling up to a minute).
    public var s3RetryDelay: Double = 5

    public init(pull: PullOptions, compress: CompressOptions, upload: UploadOptions) {
        self.pull = pull
        self.compress = compress
        self.upload = upload
    }
}
