/// Everything s3upload needs to know, resolved from flags, environment and config file.
public struct UploadOptions: Sendable {
    public var directories: [String]
    public var bucket: String
    public var prefix = "raw"
    public var keyTemplate: KeyTemplate
    /// Files in flight at once (`TransferWindow`), and parts in flight per large file.
    public var jobs = 8
    public var partSize: Int64 = 8 << 20
    /// `--bwlimit`: a rate or a timetable; nil for no cap.
    public var bandwidth: BandwidthSchedule? = nil
    public var overwrite = false
    /// Seconds with no byte moving before a request is abandoned and retried.
    public var stallSeconds = 60
    public var dryRun = false
    public var ledgerPath: String

    public init(directories: [String], bucket: String, keyTemplate: KeyTemplate, ledgerPath: String) {
        self.directories = directories
        self.bucket = bucket
        self.keyTemplate = keyTemplate
        self.ledgerPath = ledgerPath
    }
}

extension UploadOptions {
    /// The connections that carry it: one per transfer in flight, capped and stall-bounded.
    public var transfer: CurlClient.Options {
        var http = CurlClient.Options()
        http.connections = max(1, jobs)
        http.bandwidth = bandwidth
        http.stallSeconds = stallSeconds
        return http
    }

    /// A file's key. {date} is the UTC day the ledger first planned the file (`plannedDate`), today
    /// for a file it does not know yet, so a resume on a later day finds the same key.
    func key(for file: LocalFile, plannedDate: String?) -> String {
        keyTemplate.key(prefix: prefix, date: plannedDate ?? Timestamp.utcDate(), file: file)
    }
}
