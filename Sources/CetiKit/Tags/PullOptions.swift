/// What `ceti whaletag` pulls from where, and how it logs in.
public struct PullOptions: Sendable {
    public var dataDir: String
    public var remoteDir = "/data"
    public var port = 22
    public var login: SSHLogin
    public var knownHostsPath: String
    public var acceptNewHostKey: Set<String> = []
    /// Ask the tag's own sha256sum to confirm every copy (on by default).
    public var remoteVerify = true
    public var dryRun = false
    /// After pulling, delete on the tag what `require` proves safe.
    public var clean = false
    /// Stop the tag's capture service while pulling, and start it again afterwards.
    public var stopCapture = false
    /// With `stopCapture`: the tag's timer starts the recorder again this long after ceti last
    /// renewed it (ceti renews it every quarter of it while the pull goes on).
    public var captureGraceSeconds = CaptureService.defaultGraceSeconds
    public var require: CleanProof = .uploaded
    /// A file modified less than this long ago (by the tag's clock) is still being written.
    public var settleSeconds: Int64 = 60
    public var ledgerPath: String
    public var jobs = 4

    public init(dataDir: String, login: SSHLogin, knownHostsPath: String, ledgerPath: String) {
        self.dataDir = dataDir
        self.login = login
        self.knownHostsPath = knownHostsPath
        self.ledgerPath = ledgerPath
    }

    /// The factory password of every tag (DESIGN §1); used when no other is given.
    public static let factoryPassword = "ceticeti"
}
