import Foundation

/// The chain of custody in one SQLite file (WAL, mode 0600). Every write is a transaction; a
/// destructive step elsewhere in ceti asks this for proof before it deletes anything.
public final class Ledger: @unchecked Sendable {
    public let path: String
    let db: SQLiteDatabase
    // Recursive, so a batch of reads can run inside one `reading` transaction.
    private let lock = NSRecursiveLock()
    static let schemaVersion: Int64 = 8

    /// `--ledger`, else `$CETI_LEDGER`, else `ledger:` in the config file, else
    /// `$XDG_DATA_HOME/ceti/ledger.sqlite` (`~/.local/share/ceti/ledger.sqlite`).
    public static func resolvePath(flag: String?, environment: [String: String], config: ConfigFile) -> String {
        for candidate in [flag, environment["CETI_LEDGER"], config["ledger"]] {
            if let p = candidate, !p.isEmpty { return p }
        }
        let data =
            environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.local/share")
        return data + "/ceti/ledger.sqlite"
    }

    /// Opens (creating when needed) the ledger for writing.
    public init(path: String) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty {
            try? FileManager.default.createDirectory(
                atPath: dir, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
        }
        // Create it 0600 ourselves: SQLite would use the umask, and the ledger names every file.
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw SQLiteError.open(path: path, message: String(cString: strerror(errno)))
        }
        close(fd)
        db = try SQLiteDatabase(path: path, readOnly: false)
        // A damaged ledger stops the command here, before it touches a file. quick_check reads
        // every page once: 10-20 ms for 10,000 files with their objects and derivatives (12 MB).
        try db.quickCheck()
        try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
        try migrate()
    }

    /// Opens an existing ledger read-only, or an empty in-memory one when there is none: for
    /// `--dry-run`, which must not write anything anywhere.
    public init(readOnlyPath path: String) throws {
        self.path = path
        if FileManager.default.fileExists(atPath: path) {
            let existing = try SQLiteDatabase(path: path, readOnly: true)
            try existing.quickCheck()
            let version = try existing.query("PRAGMA user_version").first?.first?.int ?? 0
            // An empty file has nothing recorded yet.
            db = version == 0 ? try Self.memory() : existing
        } else {
            db = try Self.memory()
        }
    }

    private static func memory() throws -> SQLiteDatabase {
        let db = try SQLiteDatabase(path: ":memory:", readOnly: false)
        try db.execute(schema)
        return db
    }

    private func migrate() throws {
        let version = try db.query("PRAGMA user_version").first?.first?.int ?? 0
        if version > Self.schemaVersion {
            throw SQLiteError.open(path: path, message: "it was written by a newer ceti (schema \(version)); upgrade ceti")
        }
        if version < Self.schemaVersion {
            // Every statement is CREATE ... IF NOT EXISTS: one script serves new and older ledgers.
            try transaction {
                try db.execute(Self.schema)
                // Schema 7: runs of `ceti watch` are kept apart from ingest's (which resumes its last one).
                if try !db.query("PRAGMA table_info(runs)").contains(where: { $0[1].text == "kind" }) {
                    try db.execute("ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'ingest'")
                }
                try db.execute("PRAGMA user_version = \(Self.schemaVersion)")
            }
        }
    }

    static let schema = """
        CREATE TABLE IF NOT EXISTS files (
            path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
            sha256 TEXT, planned_date TEXT NOT NULL, hashed_at TEXT);
        CREATE TABLE IF NOT EXISTS objects (
            bucket TEXT NOT NULL, key TEXT NOT NULL, device TEXT NOT NULL, local_path TEXT NOT NULL,
            size INTEGER NOT NULL, sha256 TEXT NOT NULL, etag TEXT NOT NULL, part_size INTEGER NOT NULL,
            verified_at TEXT NOT NULL, PRIMARY KEY (bucket, key));
        CREATE INDEX IF NOT EXISTS objects_sha256 ON objects(sha256);
        CREATE TABLE IF NOT EXISTS uploads (
            bucket TEXT NOT NULL, key TEXT NOT NULL, upload_id TEXT NOT NULL UNIQUE, device TEXT NOT NULL,
            local_path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
            sha256 TEXT NOT NULL, part_size INTEGER NOT NULL, started_at TEXT NOT NULL, PRIMARY KEY (bucket, key));
        CREATE TABLE IF NOT EXISTS upload_parts (
            upload_id TEXT NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE, part_number INTEGER NOT NULL,
            size INTEGER NOT NULL, md5 TEXT NOT NULL, etag TEXT NOT NULL, PRIMARY KEY (upload_id, part_number));
        CREATE TABLE IF NOT EXISTS sources (
            id INTEGER PRIMARY KEY, device TEXT NOT NULL, remote_path TEXT NOT NULL, size INTEGER NOT NULL,
            mtime INTEGER NOT NULL, sha256 TEXT NOT NULL, remote_verified INTEGER NOT NULL, first_seen TEXT NOT NULL,
            UNIQUE (device, remote_path, sha256));
        CREATE TABLE IF NOT EXISTS copies (
            id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL REFERENCES sources(id), path TEXT NOT NULL,
            size INTEGER NOT NULL, sha256 TEXT NOT NULL, verified_at TEXT NOT NULL, UNIQUE (source_id, path));
        CREATE TABLE IF NOT EXISTS derivatives (
            id INTEGER PRIMARY KEY, input_path TEXT NOT NULL, input_sha256 TEXT NOT NULL, input_size INTEGER NOT NULL,
            output_path TEXT NOT NULL, output_sha256 TEXT NOT NULL, output_size INTEGER NOT NULL, codec TEXT NOT NULL,
            parameters TEXT NOT NULL, flac_md5 TEXT, verified_at TEXT NOT NULL, UNIQUE (output_path, output_sha256));
        CREATE INDEX IF NOT EXISTS derivatives_input ON derivatives(input_sha256);
        CREATE TABLE IF NOT EXISTS failures (
            bucket TEXT NOT NULL, key TEXT NOT NULL, device TEXT NOT NULL, local_path TEXT NOT NULL,
            message TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (bucket, key));
        CREATE TABLE IF NOT EXISTS runs (
            id TEXT PRIMARY KEY, started_at TEXT NOT NULL, local_date TEXT NOT NULL, finished_at TEXT,
            kind TEXT NOT NULL DEFAULT 'ingest');
        CREATE TABLE IF NOT EXISTS run_devices (
            run_id TEXT NOT NULL REFERENCES runs(id), device TEXT NOT NULL, host TEXT NOT NULL, manifest_key TEXT,
            manifest_etag TEXT, completed_at TEXT, PRIMARY KEY (run_id, device));
        CREATE TABLE IF NOT EXISTS run_files (
            device TEXT NOT NULL, remote_path TEXT NOT NULL, sha256 TEXT NOT NULL, run_id TEXT NOT NULL REFERENCES runs(id),
            entry TEXT NOT NULL, PRIMARY KEY (device, remote_path, sha256));
        CREATE INDEX IF NOT EXISTS copies_path ON copies(path);
        CREATE INDEX IF NOT EXISTS derivatives_output ON derivatives(output_path);
        CREATE INDEX IF NOT EXISTS objects_local_path ON objects(local_path);
        CREATE TABLE IF NOT EXISTS upload_queue (
            local_path TEXT PRIMARY KEY, device TEXT NOT NULL, remote_path TEXT NOT NULL, sha256 TEXT NOT NULL,
            queued_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS watch_sessions (
            root TEXT NOT NULL, name TEXT NOT NULL, fingerprint TEXT NOT NULL, changed_at INTEGER NOT NULL,
            state TEXT NOT NULL, run_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER,
            last_error TEXT, manifest TEXT, done_fingerprint TEXT, PRIMARY KEY (root, name));
        CREATE TABLE IF NOT EXISTS backups (
            path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL, verified_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS qc_results (
            path TEXT NOT NULL, sha256 TEXT NOT NULL, result TEXT NOT NULL, measured_at TEXT NOT NULL,
            PRIMARY KEY (path, sha256));
        """

    /// Statements this ledger has run (for the tests that bound them per file).
    var statements: Int { locked { db.executed } }

    @discardableResult
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Runs many lookups in one read transaction: one lock of the database instead of one per
    /// query, which is most of the cost of planning thousands of files.
    public func reading<T>(_ body: () throws -> T) throws -> T {
        try locked {
            try db.execute("BEGIN")
            defer { try? db.execute("COMMIT") }
            return try body()
        }
    }

    func transaction(_ body: () throws -> Void) throws {
        try db.execute("BEGIN IMMEDIATE")
        do {
            try body()
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    // MARK: files

    public func file(path: String) throws -> FileRecord? {
        try select(FileRecord.self, "FROM files WHERE path = ?", [.text(path)]).first
    }

    public func saveFile(_ f: FileRecord) throws {
        try locked {
            try db.query(
                """
                INSERT INTO files (path, size, mtime_ns, inode, sha256, planned_date, hashed_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, inode = excluded.inode,
                    sha256 = excluded.sha256, hashed_at = excluded.hashed_at
                """,
                [
                    .text(f.path), .int(f.fingerprint.size), .int(f.fingerprint.mtimeNanoseconds),
                    .int(Int64(bitPattern: f.fingerprint.inode)), f.sha256.map(SQLValue.text) ?? .null,
                    .text(f.plannedDate), f.sha256 == nil ? .null : .text(Timestamp.now()),
                ])
        }
    }

    /// Remembers files seen for the first time (with the date they were planned), in one
    /// transaction; files already known keep their record.
    public func insertNewFiles(_ files: [FileRecord]) throws {
        guard !files.isEmpty else { return }
        try locked {
            try transaction {
                for f in files {
                    try db.query(
                        "INSERT OR IGNORE INTO files (path, size, mtime_ns, inode, planned_date) VALUES (?, ?, ?, ?, ?)",
                        [
                            .text(f.path), .int(f.fingerprint.size), .int(f.fingerprint.mtimeNanoseconds),
                            .int(Int64(bitPattern: f.fingerprint.inode)), .text(f.plannedDate),
                        ])
                }
            }
        }
    }

    // MARK: objects

    /// The verified objects in `bucket` (of one device when given), by key.
    public func verifiedObjects(bucket: String, device: String? = nil) throws -> [ObjectRecord] {
        try select(
            ObjectRecord.self, "FROM objects o WHERE o.bucket = ?" + (device == nil ? "" : " AND o.device = ?") + " ORDER BY o.key",
            [.text(bucket)] + (device.map { [.text($0)] } ?? []))
    }

    public func object(bucket: String, key: String) throws -> ObjectRecord? {
        try select(ObjectRecord.self, "FROM objects o WHERE o.bucket = ? AND o.key = ?", [.text(bucket), .text(key)]).first
    }

    /// The verified object that proves a local file is in S3 without reading it: the file is
    /// unchanged (size, mtime, inode) since it was hashed, and the object has that hash and size.
    public func proof(record: FileRecord, fingerprint: FileFingerprint, bucket: String, key: String) throws -> ObjectRecord? {
        guard record.fingerprint == fingerprint, let sha = record.sha256,
            let object = try object(bucket: bucket, key: key),
            object.sha256 == sha, object.size == fingerprint.size
        else { return nil }
        return object
    }

    /// Records a verified object, and in the same transaction closes the multipart upload that
    /// produced it and clears any earlier failure for that key.
    public func recordVerified(_ o: ObjectRecord, closingUpload uploadID: String? = nil) throws {
        try locked {
            try transaction {
                try db.query(
                    """
                    INSERT OR REPLACE INTO objects (bucket, key, device, local_path, size, sha256, etag, part_size, verified_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .text(o.bucket), .text(o.key), .text(o.device), .text(o.localPath), .int(o.size),
                        .text(o.sha256), .text(o.etag), .int(o.partSize), .text(o.verifiedAt),
                    ])
                if let uploadID {
                    try db.query("DELETE FROM uploads WHERE upload_id = ?", [.text(uploadID)])
                }
                try db.query("DELETE FROM failures WHERE bucket = ? AND key = ?", [.text(o.bucket), .text(o.key)])
            }
        }
    }

    // MARK: uploads in flight

    public func upload(bucket: String, key: String) throws -> UploadRecord? {
        try select(UploadRecord.self, "FROM uploads WHERE bucket = ? AND key = ?", [.text(bucket), .text(key)]).first
    }

    public func beginUpload(_ u: UploadRecord) throws {
        try locked {
            try transaction {
                try db.query("DELETE FROM uploads WHERE bucket = ? AND key = ?", [.text(u.bucket), .text(u.key)])
                try db.query(
                    """
                    INSERT INTO uploads (bucket, key, upload_id, device, local_path, size, mtime_ns, inode, sha256, part_size, started_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .text(u.bucket), .text(u.key), .text(u.uploadID), .text(u.device), .text(u.localPath),
                        .int(u.fingerprint.size), .int(u.fingerprint.mtimeNanoseconds), .int(Int64(bitPattern: u.fingerprint.inode)),
                        .text(u.sha256), .int(u.partSize), .text(u.startedAt),
                    ])
            }
        }
    }

    public func parts(uploadID: String) throws -> [PartRecord] {
        try select(PartRecord.self, "FROM upload_parts WHERE upload_id = ? ORDER BY part_number", [.text(uploadID)])
    }

    public func recordPart(uploadID: String, _ p: PartRecord) throws {
        try locked {
            try db.query(
                "INSERT OR REPLACE INTO upload_parts (upload_id, part_number, size, md5, etag) VALUES (?, ?, ?, ?, ?)",
                [.text(uploadID), .int(Int64(p.number)), .int(p.size), .text(p.md5), .text(p.etag)])
        }
    }

    public func dropUpload(uploadID: String) throws {
        try locked { _ = try db.query("DELETE FROM uploads WHERE upload_id = ?", [.text(uploadID)]) }
    }

    // MARK: sources (files on devices) and their local copies

    /// The verified local copy of a device file with this size and mtime, if one was pulled.
    public func copy(device: String, remotePath: String, size: Int64, mtime: Int64) throws -> CopyRecord? {
        try select(
            CopyRecord.self,
            """
            FROM sources s JOIN copies c ON c.source_id = s.id
            WHERE s.device = ? AND s.remote_path = ? AND s.size = ? AND s.mtime = ? ORDER BY c.id DESC LIMIT 1
            """, [.text(device), .text(remotePath), .int(size), .int(mtime)]
        ).first
    }

    /// Every recorded copy of a device file with this size and mtime (backup and staging, say).
    public func copies(device: String, remotePath: String, size: Int64, mtime: Int64) throws -> [CopyRecord] {
        try select(
            CopyRecord.self,
            """
            FROM sources s JOIN copies c ON c.source_id = s.id
            WHERE s.device = ? AND s.remote_path = ? AND s.size = ? AND s.mtime = ? ORDER BY c.id
            """, [.text(device), .text(remotePath), .int(size), .int(mtime)])
    }

    /// Records a device file and its verified local copy in one transaction.
    public func recordCopy(_ c: CopyRecord) throws {
        try locked {
            try transaction {
                try db.query(
                    """
                    INSERT INTO sources (device, remote_path, size, mtime, sha256, remote_verified, first_seen) VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(device, remote_path, sha256) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,
                        remote_verified = max(remote_verified, excluded.remote_verified)
                    """,
                    [
                        .text(c.device), .text(c.remotePath), .int(c.size), .int(c.mtime), .text(c.sha256),
                        .int(c.remoteVerified ? 1 : 0), .text(c.verifiedAt),
                    ])
                guard
                    let id = try rows(
                        "SELECT id FROM sources WHERE device = ? AND remote_path = ? AND sha256 = ?",
                        [.text(c.device), .text(c.remotePath), .text(c.sha256)]
                    ).first?.int(0)
                else { throw SQLiteError.damaged(path: path, message: "a source just recorded is missing") }
                try db.query(
                    "INSERT OR REPLACE INTO copies (source_id, path, size, sha256, verified_at) VALUES (?, ?, ?, ?, ?)",
                    [.int(id), .text(c.localPath), .int(c.size), .text(c.sha256), .text(c.verifiedAt)])
            }
        }
    }

    // MARK: derivatives (compressed outputs)

    public func derivative(outputPath: String) throws -> DerivativeRecord? {
        try select(DerivativeRecord.self, "FROM derivatives WHERE output_path = ? ORDER BY id DESC LIMIT 1", [.text(outputPath)]).first
    }

    public func recordDerivative(_ d: DerivativeRecord) throws {
        try locked {
            try db.query(
                """
                INSERT OR REPLACE INTO derivatives (input_path, input_sha256, input_size, output_path, output_sha256, output_size,
                    codec, parameters, flac_md5, verified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(d.inputPath), .text(d.inputSHA256), .int(d.inputSize), .text(d.outputPath), .text(d.outputSHA256),
                    .int(d.outputSize), .text(d.codec), .text(d.parameters), d.flacMD5.map(SQLValue.text) ?? .null,
                    .text(d.verifiedAt),
                ])
        }
    }

    /// Drops the record of one output (path and SHA-256): it was recorded before its rename, and
    /// the rename did not happen.
    func forgetDerivative(outputPath: String, outputSHA256: String) throws {
        try locked {
            _ = try db.query(
                "DELETE FROM derivatives WHERE output_path = ? AND output_sha256 = ?",
                [.text(outputPath), .text(outputSHA256)])
        }
    }

    // MARK: failures and status

    public func recordFailure(bucket: String, key: String, device: String, localPath: String, message: String) throws {
        try locked {
            try db.query(
                "INSERT OR REPLACE INTO failures (bucket, key, device, local_path, message, at) VALUES (?, ?, ?, ?, ?, ?)",
                [.text(bucket), .text(key), .text(device), .text(localPath), .text(message), .text(Timestamp.now())])
        }
    }

    /// Verified, in-flight and failed uploads per device, from the ledger alone.
    public func status() throws -> [DeviceStatus] {
        try locked {
            var byDevice: [String: DeviceStatus] = [:]
            func entry(_ d: String) -> DeviceStatus { byDevice[d] ?? DeviceStatus(device: d) }
            for r in try rows("SELECT device, COUNT(*), SUM(size), MAX(verified_at) FROM objects GROUP BY device") {
                var s = entry(try r.text(0))
                s.verifiedObjects = Int(try r.int(1))
                s.verifiedBytes = r.optionalInt(2) ?? 0
                s.lastVerifiedAt = r.optionalText(3)
                byDevice[s.device] = s
            }
            for r in try rows("SELECT device, COUNT(*), SUM(size) FROM uploads GROUP BY device") {
                var s = entry(try r.text(0))
                s.inFlightUploads = Int(try r.int(1))
                s.inFlightBytes = r.optionalInt(2) ?? 0
                byDevice[s.device] = s
            }
            for r in try rows(
                """
                SELECT device, COUNT(*), SUM(size) FROM sources WHERE id IN (SELECT source_id FROM copies) GROUP BY device
                """)
            {
                var s = entry(try r.text(0))
                s.pulledFiles = Int(try r.int(1))
                s.pulledBytes = r.optionalInt(2) ?? 0
                byDevice[s.device] = s
            }
            for r in try rows("SELECT device, local_path, message FROM failures ORDER BY at") {
                var s = entry(try r.text(0))
                s.failed += 1
                s.failures.append("\(try r.text(1)): \(try r.text(2))")
                byDevice[s.device] = s
            }
            return byDevice.values.sorted { $0.device < $1.device }
        }
    }
}
