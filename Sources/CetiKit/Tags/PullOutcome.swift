/// What happened to one file on a tag.
public struct PullOutcome: Sendable, Codable, Equatable {
    public enum Action: String, Sendable, Codable {
        case pulled
        case resumed
        /// A verified copy is already in the ledger.
        case skipped
        /// Modified within the last minute: the tag may still be writing it.
        case stillWriting = "still-writing"
        /// Not a regular file (folders, links): never pulled.
        case ignored
        case failed
        case wouldPull = "would-pull"
    }

    public var action: Action
    public var name: String
    public var size: Int64
    public var localPath: String? = nil
    public var sha256: String? = nil
    public var bytesReceived: Int64 = 0
    public var message: String? = nil
}

/// One tag's pull.
public struct TagPullReport: Sendable, Codable {
    public var tag: String
    public var address: String
    public var files: [PullOutcome] = []
    /// With -c: what was deleted on the tag and what was kept, with the proof or reason.
    public var cleaned: [CleanOutcome] = []
    /// Set when the whole tag failed (unreachable, refused, changed host key).
    public var error: String? = nil
    /// Set when this target reached a tag that another target of the run is pulling (the same
    /// hostname and host key): it is pulled once, by that one.
    public var duplicateOf: String? = nil

    public var failed: Bool { error != nil || files.contains { $0.action == .failed } }
}
