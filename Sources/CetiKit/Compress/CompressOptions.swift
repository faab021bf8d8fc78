/// What `ceti compress` does with raw audio and CSV files.
public struct CompressOptions: Sendable {
    public var directories: [String]
    public var raw = RawFormat.tag
    public var flacLevel = 5
    public var gzipLevel = 6
    public var jobs: Int
    /// Keep originals (default: remove each once its output is verified and recorded).
    public var keep = false
    public var dryRun = false
    public var ledgerPath: String
    /// Recording QC in the encoding pass (issue #16), with these thresholds; nil: none.
    public var qc: QCThresholds? = QCThresholds()

    public init(directories: [String], ledgerPath: String, jobs: Int) {
        self.directories = directories
        self.ledgerPath = ledgerPath
        self.jobs = jobs
    }
}

/// What happened to one file.
public struct CompressOutcome: Sendable, Codable, Equatable {
    public enum Action: String, Sendable, Codable {
        case compressed
        /// Its verified output is already recorded (the original is removed now if it was left).
        case skipped
        case failed
        case wouldCompress = "would-compress"
    }
    public var action: Action
    public var input: String
    public var output: String
    public var codec: String
    public var inputSize: Int64
    public var outputSize: Int64 = 0
    public var originalRemoved = false
    public var message: String? = nil
}
