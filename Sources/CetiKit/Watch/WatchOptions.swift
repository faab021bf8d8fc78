/// What `ceti watch` runs with: the config's `watch:` section, and the rest resolved from flags,
/// environment and the config file.
public struct WatchOptions: Sendable {
    public var config: WatchConfig
    /// The bucket and prefix of roots that name none.
    public var bucket: String?
    public var prefix = "raw"
    public var ledgerPath: String
    /// Scan once, upload what is complete, exit (cron).
    public var once = false
    /// `HOST:PORT` of the status page; nil for none.
    public var statusListen: String?
    public var statusListenAny = false
    /// Files in flight at once per session, and parts per large file.
    public var jobs = 8
    public var partSize: Int64 = 8 << 20
    /// The raw layout when nothing else says it, and the levels (profiles with `compress: true`).
    public var raw = RawFormat.tag
    public var flacLevel = 5
    public var gzipLevel = 6
    /// Recording QC of what a `compress: true` profile encodes (the config's `qc:` section).
    public var qc = QCThresholds()

    public init(config: WatchConfig, ledgerPath: String) {
        self.config = config
        self.ledgerPath = ledgerPath
    }
}
