/// What a notification says: a session completed, failed, or stalled (no byte moved for the
/// profile's `stall_after` while work was pending); `test` from `ceti watch test-notify`. Sent as
/// the webhook's JSON body (snake_case keys; `text` is what Slack shows) and as an e-mail.
/// Holds no secret.
public struct WatchEvent: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case complete, failed, stalled, test
    }

    public var event: Kind
    /// The session's path below its root (for `test`: "test").
    public var session: String
    public var root: String
    public var files: Int
    public var bytes: Int64
    /// s3:// address of the manifest (complete only).
    public var manifest: String?
    public var errors: [String]
    /// One line for people: the subject of the e-mail, the message Slack shows.
    public var text: String
    /// The machine the watcher runs on, and when (ISO 8601).
    public var host: String
    public var at: String

    public init(
        event: Kind, session: String, root: String, files: Int, bytes: Int64, manifest: String?, errors: [String], text: String,
        host: String, at: String
    ) {
        self.event = event
        self.session = session
        self.root = root
        self.files = files
        self.bytes = bytes
        self.manifest = manifest
        self.errors = errors
        self.text = text
        self.host = host
        self.at = at
    }
}
