/// One session folder as a scan found it: its files (with the session name as their `{device}`
/// and their path below the session as `{path}`), and what decides whether it is complete.
public struct SessionSnapshot: Sendable, Equatable {
    public var root: String
    /// The path below the root (`a` at depth 1, `a/b` at depth 2), in name form.
    public var name: String
    public var path: String
    public var files: [LocalFile]
    /// The files' paths, sizes and mtimes hashed: equal means nothing changed.
    public var fingerprint: String
    /// The newest file's mtime, seconds since the epoch (0 for an empty session).
    public var newestMTime: Int64
    /// Required markers not there.
    public var missingMarkers: [String]
    /// What could not be read (a session with any is never uploaded as if whole).
    public var unreadable: [String]

    public var bytes: Int64 { files.reduce(0) { $0 + $1.fingerprint.size } }
}
