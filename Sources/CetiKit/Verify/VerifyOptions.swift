/// What `ceti verify` checks.
public struct VerifyOptions: Sendable {
    public var bucket: String
    public var ledgerPath: String
    /// Download every object and hash it; hash local copies and backups too.
    public var deep = false
    /// Only the objects listed by this run's manifests.
    public var run: String?
    /// Only this device's objects.
    public var device: String?
    /// Objects checked at once.
    public var jobs = 8

    public init(bucket: String, ledgerPath: String) {
        self.bucket = bucket
        self.ledgerPath = ledgerPath
    }
}
