/// What `ceti qc` reports on: the files in a folder (measured now), or what ingest measured for
/// a device or a run (from the ledger, no file read).
public struct QCOptions: Sendable {
    public enum Source: Sendable, Equatable {
        /// Files directly in the folder make one device (named after it); each folder in it, with
        /// what is below it, another.
        case directory(String)
        /// The latest run that ingested the device.
        case device(String)
        case run(String)
    }

    public var source: Source
    public var ledgerPath: String
    public var thresholds = QCThresholds()
    /// The layout of raw audio when neither its name nor a data_config file gives it.
    public var raw = RawFormat.tag
    /// Files measured at once.
    public var jobs: Int
    /// Where to write the HTML report.
    public var html: String?

    public init(source: Source, ledgerPath: String, jobs: Int) {
        self.source = source
        self.ledgerPath = ledgerPath
        self.jobs = jobs
    }
}
