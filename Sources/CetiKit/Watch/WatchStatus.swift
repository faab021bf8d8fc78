/// What `ceti watch` is doing, as the status page, `/status.json` and `/metrics` show it: one
/// snapshot, taken from the `StatusBoard` the watcher updates. Never holds a secret.
public struct WatchStatus: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable, CaseIterable {
        /// Still changing, or not yet unchanged for the profile's `stable_for`.
        case waiting
        /// A required marker file is missing.
        case incomplete
        /// Complete; being compressed and uploaded.
        case uploading
        /// Every file verified in S3, manifest and `_COMPLETE` written.
        case complete
        /// The last attempt failed; retried later with backoff.
        case failed
        /// Older than the profile's `max_age`: reported, not uploaded.
        case tooOld = "too_old"
    }

    public struct Session: Sendable, Codable, Equatable {
        /// The watched root the session is in, and its path below that root.
        public var root: String
        public var name: String
        public var profile: String
        public var state: State
        public var files: Int
        public var bytes: Int64
        /// Bytes of this session verified in S3 so far.
        public var uploadedBytes: Int64
        /// s3:// address of the manifest, once written.
        public var manifest: String?
        /// The last error, for a failed session (or why it waits: the missing marker).
        public var error: String?
        /// ISO 8601 times: when the session last changed, and when its state was last set.
        public var changedAt: String
        public var updatedAt: String
        /// When a failed session is tried again.
        public var nextAttemptAt: String?

        public init(
            root: String, name: String, profile: String, state: State, files: Int, bytes: Int64, uploadedBytes: Int64 = 0,
            manifest: String? = nil, error: String? = nil, changedAt: String, updatedAt: String, nextAttemptAt: String? = nil
        ) {
            self.root = root
            self.name = name
            self.profile = profile
            self.state = state
            self.files = files
            self.bytes = bytes
            self.uploadedBytes = uploadedBytes
            self.manifest = manifest
            self.error = error
            self.changedAt = changedAt
            self.updatedAt = updatedAt
            self.nextAttemptAt = nextAttemptAt
        }
    }

    /// ceti's version, and when the watcher started and last scanned (ISO 8601).
    public var version: String
    public var startedAt: String
    public var lastScanAt: String?
    /// When a session last completed, ISO 8601 and as seconds since the epoch (for /metrics).
    public var lastSuccessAt: String?
    public var lastSuccessEpoch: Double?
    /// Bytes verified in S3 since the watcher started.
    public var uploadedBytes: Int64 = 0
    /// Bytes of sessions not yet complete (waiting, incomplete, uploading, failed).
    public var pendingBytes: Int64 = 0
    public var sessions: [Session] = []

    public init(version: String, startedAt: String) {
        self.version = version
        self.startedAt = startedAt
    }

    /// Sessions in each state (every state present, 0 when none).
    public var sessionsByState: [State: Int] {
        var counts = Dictionary(uniqueKeysWithValues: State.allCases.map { ($0, 0) })
        for s in sessions { counts[s.state, default: 0] += 1 }
        return counts
    }

    /// Complete sessions waiting for (or in) their upload: the queue.
    public var queueSize: Int { sessions.filter { $0.state == .uploading || $0.state == .failed }.count }
}
