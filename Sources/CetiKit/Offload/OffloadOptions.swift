/// What `ceti general_offload` copies from where to where.
public struct OffloadOptions: Sendable {
    public var source: String
    public var deviceID: String
    public var dataDir: String
    public var stagingDir: String
    /// Dated backups go below this (`--backup`, default DATA_DIR/backup).
    public var backupRoot: String
    public var dryRun = false
    public var ledgerPath: String
    /// The UTC date of the backup folder.
    public var date = Timestamp.utcDate()

    public init(source: String, deviceID: String, dataDir: String, stagingDir: String?, ledgerPath: String) {
        self.source = source
        self.deviceID = deviceID
        self.dataDir = dataDir
        self.stagingDir = stagingDir ?? dataDir + "/staging"
        self.backupRoot = dataDir + "/backup"
        self.ledgerPath = ledgerPath
    }

    public var backupFolder: String { "\(backupRoot)/\(date)/\(deviceID)" }
    public var stagingFolder: String { "\(stagingDir)/\(deviceID)" }
}

/// What happened to one file of the card.
public struct OffloadOutcome: Sendable, Codable, Equatable {
    public enum Action: String, Sendable, Codable {
        case copied
        /// A verified backup is already in the ledger.
        case alreadySaved = "already-saved"
        /// Already saved but not uploaded yet, and its staging copy was gone: staged again.
        case restaged
        case failed
        case wouldCopy = "would-copy"
    }
    public var action: Action
    /// Path below the card's root.
    public var original: String
    public var name: String
    public var size: Int64
    public var sha256: String? = nil
    public var message: String? = nil
}
