import Foundation

/// Where one watched session stands, kept across restarts: the stability window runs from
/// `changedAt` (seconds since the epoch) whatever happens to the watcher, and a retry resumes
/// the same run (same manifest folder).
public struct WatchSessionRecord: Sendable, Equatable {
    public var root: String
    public var name: String
    /// The session's files (paths, sizes, mtimes) hashed: equal means nothing changed.
    public var fingerprint: String
    public var changedAt: Int64
    public var state: WatchStatus.State
    public var runID: String?
    public var attempts: Int = 0
    public var nextAttemptAt: Int64?
    public var lastError: String?
    public var manifest: String?
    /// The fingerprint of the files the last complete upload covered.
    public var doneFingerprint: String?
}

extension WatchSessionRecord: LedgerRow {
    static let columns =
        "root, name, fingerprint, changed_at, state, run_id, attempts, next_attempt_at, last_error, manifest, done_fingerprint"
    init(_ r: Row) throws {
        self.init(
            root: try r.text(0), name: try r.text(1), fingerprint: try r.text(2), changedAt: try r.int(3),
            state: WatchStatus.State(rawValue: try r.text(4)) ?? .waiting, runID: r.optionalText(5), attempts: Int(try r.int(6)),
            nextAttemptAt: r.optionalInt(7), lastError: r.optionalText(8), manifest: r.optionalText(9), doneFingerprint: r.optionalText(10))
    }
}

/// `ceti watch`'s sessions and runs.
extension Ledger {
    public func watchSessions() throws -> [WatchSessionRecord] {
        try locked { try rows("SELECT \(WatchSessionRecord.columns) FROM watch_sessions ORDER BY root, name").map(WatchSessionRecord.init) }
    }

    public func saveWatchSession(_ s: WatchSessionRecord) throws {
        try locked {
            try db.query(
                """
                INSERT INTO watch_sessions (\(WatchSessionRecord.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(root, name) DO UPDATE SET fingerprint = excluded.fingerprint, changed_at = excluded.changed_at,
                    state = excluded.state, run_id = excluded.run_id, attempts = excluded.attempts,
                    next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error, manifest = excluded.manifest,
                    done_fingerprint = excluded.done_fingerprint
                """,
                [
                    .text(s.root), .text(s.name), .text(s.fingerprint), .int(s.changedAt), .text(s.state.rawValue),
                    s.runID.map(SQLValue.text) ?? .null, .int(Int64(s.attempts)), s.nextAttemptAt.map(SQLValue.int) ?? .null,
                    s.lastError.map(SQLValue.text) ?? .null, s.manifest.map(SQLValue.text) ?? .null,
                    s.doneFingerprint.map(SQLValue.text) ?? .null,
                ])
        }
    }

    /// A new run for one session's upload (never one of ingest's: `openRun` resumes only those).
    public func newWatchRun(now: Date = Date()) throws -> IngestRunRecord {
        try locked {
            let suffix = (0..<4).map { _ in String(UInt8.random(in: 0...15), radix: 16) }.joined()
            let run = IngestRunRecord(
                id: Timestamp.compact(now) + "-" + suffix, startedAt: Timestamp.iso8601(now), localDate: Timestamp.localDate(now),
                resumed: false)
            try db.query(
                "INSERT INTO runs (id, started_at, local_date, kind) VALUES (?, ?, ?, 'watch')",
                [.text(run.id), .text(run.startedAt), .text(run.localDate)])
            return run
        }
    }

    /// The run of this id (a session's upload resumed after a restart), nil when unknown.
    public func run(id: String) throws -> IngestRunRecord? {
        try locked {
            try rows("SELECT id, started_at, local_date FROM runs WHERE id = ?", [.text(id)]).first.map {
                IngestRunRecord(id: try $0.text(0), startedAt: try $0.text(1), localDate: try $0.text(2), resumed: true)
            }
        }
    }
}

extension Ledger {
    public func forgetWatchSession(root: String, name: String) throws {
        try locked { try db.query("DELETE FROM watch_sessions WHERE root = ? AND name = ?", [.text(root), .text(name)]) }
    }
}
