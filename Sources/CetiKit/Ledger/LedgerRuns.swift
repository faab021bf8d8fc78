import Foundation

/// One `ceti ingest` run: its id names its manifests' prefix in S3, its local date the backup folder.
public struct IngestRunRecord: Sendable, Equatable {
    public var id: String
    public var startedAt: String
    public var localDate: String
    /// True when this is an interrupted run being finished (same id, same prefix).
    public var resumed: Bool
}

/// Where a device stands in one run.
public struct RunDeviceRecord: Sendable, Equatable {
    public var host: String
    public var manifestKey: String?
    public var manifestETag: String?
    public var completedAt: String?
}

/// Ingest runs, the files each device's manifest lists, and verified backup copies.
extension Ledger {
    /// The run interrupted last time (killed before it finished), or a new one. Resuming keeps the
    /// id, so a rerun writes the same manifests under the same prefix and never a second `_COMPLETE`.
    public func openRun(now: Date = Date()) throws -> IngestRunRecord {
        try locked {
            if let r = try rows(
                "SELECT id, started_at, local_date FROM runs WHERE finished_at IS NULL AND kind = 'ingest' ORDER BY started_at DESC LIMIT 1"
            ).first {
                return IngestRunRecord(id: try r.text(0), startedAt: try r.text(1), localDate: try r.text(2), resumed: true)
            }
            let suffix = (0..<4).map { _ in String(UInt8.random(in: 0...15), radix: 16) }.joined()
            let run = IngestRunRecord(
                id: Timestamp.compact(now) + "-" + suffix, startedAt: Timestamp.iso8601(now),
                localDate: Timestamp.localDate(now), resumed: false)
            try db.query(
                "INSERT INTO runs (id, started_at, local_date) VALUES (?, ?, ?)",
                [.text(run.id), .text(run.startedAt), .text(run.localDate)])
            return run
        }
    }

    /// Marks the run finished, unless a device has its manifest but not its `_COMPLETE` yet: then
    /// the next run resumes this one and writes the marker under the same prefix.
    public func finishRun(_ id: String) throws {
        try locked {
            try db.query(
                """
                UPDATE runs SET finished_at = ? WHERE id = ? AND NOT EXISTS (SELECT 1 FROM run_devices
                    WHERE run_id = ? AND manifest_key IS NOT NULL AND completed_at IS NULL)
                """, [.text(Timestamp.now()), .text(id), .text(id)])
        }
    }

    public func runDevice(run: String, device: String) throws -> RunDeviceRecord? {
        try locked {
            try rows(
                "SELECT host, manifest_key, manifest_etag, completed_at FROM run_devices WHERE run_id = ? AND device = ?",
                [.text(run), .text(device)]
            ).first.map {
                RunDeviceRecord(
                    host: try $0.text(0), manifestKey: $0.optionalText(1), manifestETag: $0.optionalText(2), completedAt: $0.optionalText(3)
                )
            }
        }
    }

    /// Notes that a device took part in a run (at this address) before any of its files is
    /// listed: a run that queues everything for S3 still knows where the device was reached.
    public func noteDevice(run: String, device: String, host: String) throws {
        try locked {
            try db.query(
                "INSERT OR IGNORE INTO run_devices (run_id, device, host) VALUES (?, ?, ?)", [.text(run), .text(device), .text(host)])
        }
    }

    /// The address a device was last reached at, by the ledger's runs.
    public func runHost(device: String) throws -> String? {
        try locked {
            try rows("SELECT host FROM run_devices WHERE device = ? ORDER BY run_id DESC LIMIT 1", [.text(device)]).first?.text(0)
        }
    }

    /// The run whose manifest lists this device file, and whether that manifest is complete.
    public func ingestedIn(device: String, remotePath: String, sha256: String) throws -> (run: String, complete: Bool)? {
        try locked {
            try rows(
                """
                SELECT f.run_id, d.completed_at FROM run_files f LEFT JOIN run_devices d ON d.run_id = f.run_id AND d.device = f.device
                WHERE f.device = ? AND f.remote_path = ? AND f.sha256 = ?
                """, [.text(device), .text(remotePath), .text(sha256)]
            ).first.map { (try $0.text(0), $0.optionalText(1) != nil) }
        }
    }

    /// Lists a device file (its manifest entry, JSON) in this run's manifest for its device. A file
    /// already listed by a complete manifest stays there; one left pending by an earlier run moves
    /// here. Returns false when this run's manifest for the device is already complete (the file
    /// then waits for the next run).
    @discardableResult
    public func assign(run: String, device: String, host: String, remotePath: String, sha256: String, entry: String) throws -> Bool {
        try locked {
            var assigned = false
            try transaction {
                try db.query(
                    "INSERT OR IGNORE INTO run_devices (run_id, device, host) VALUES (?, ?, ?)",
                    [.text(run), .text(device), .text(host)])
                if try rows(
                    "SELECT 1 FROM run_devices WHERE run_id = ? AND device = ? AND completed_at IS NOT NULL",
                    [.text(run), .text(device)]
                ).first != nil {
                    return
                }
                try db.query(
                    """
                    INSERT INTO run_files (device, remote_path, sha256, run_id, entry) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(device, remote_path, sha256) DO UPDATE SET run_id = excluded.run_id, entry = excluded.entry
                    WHERE NOT EXISTS (SELECT 1 FROM run_devices d WHERE d.run_id = run_files.run_id AND d.device = run_files.device
                                      AND d.completed_at IS NOT NULL)
                    """, [.text(device), .text(remotePath), .text(sha256), .text(run), .text(entry)])
                assigned = true
            }
            return assigned
        }
    }

    /// Moves into this run the device's files that an earlier run listed but never wrote a
    /// manifest for (a tag with a failed file gets none, while its proven files may already be
    /// wiped from the tag and so never come back to be listed again).
    public func adoptPending(run: String, device: String, host: String) throws {
        try locked {
            try transaction {
                let pending = """
                    FROM run_files WHERE device = ?1 AND run_id != ?2 AND EXISTS (SELECT 1 FROM run_devices d
                        WHERE d.run_id = run_files.run_id AND d.device = run_files.device
                        AND d.manifest_key IS NULL AND d.completed_at IS NULL)
                        AND (SELECT kind FROM runs WHERE id = run_files.run_id) = (SELECT kind FROM runs WHERE id = ?2)
                    """
                guard try rows("SELECT 1 " + pending + " LIMIT 1", [.text(device), .text(run)]).first != nil else { return }
                try db.query(
                    "INSERT OR IGNORE INTO run_devices (run_id, device, host) VALUES (?, ?, ?)",
                    [.text(run), .text(device), .text(host)])
                try db.query(
                    "UPDATE run_files SET run_id = ?2 WHERE rowid IN (SELECT rowid " + pending + ")",
                    [.text(device), .text(run)])
            }
        }
    }

    /// The manifest entries (JSON) of one device in one run, by remote path.
    public func runEntries(run: String, device: String) throws -> [String] {
        try locked {
            try rows(
                "SELECT entry FROM run_files WHERE run_id = ? AND device = ? ORDER BY remote_path",
                [.text(run), .text(device)]
            ).map { try $0.text(0) }
        }
    }

    /// Unlists from this run's manifest of the device every file but `keeping` (remote paths): for
    /// a manifest found already complete in S3; the others go to the next run.
    public func release(run: String, device: String, keeping: Set<String>) throws {
        try locked {
            try transaction {
                let listed = try rows(
                    "SELECT remote_path FROM run_files WHERE run_id = ? AND device = ?",
                    [.text(run), .text(device)]
                ).map { try $0.text(0) }
                for path in listed where !keeping.contains(path) {
                    try db.query(
                        "DELETE FROM run_files WHERE run_id = ? AND device = ? AND remote_path = ?",
                        [.text(run), .text(device), .text(path)])
                }
            }
        }
    }

    public func recordManifest(run: String, device: String, key: String, etag: String) throws {
        try locked {
            try db.query(
                "UPDATE run_devices SET manifest_key = ?, manifest_etag = ? WHERE run_id = ? AND device = ?",
                [.text(key), .text(etag), .text(run), .text(device)])
        }
    }

    public func recordComplete(run: String, device: String) throws {
        try locked {
            try db.query(
                "UPDATE run_devices SET completed_at = ? WHERE run_id = ? AND device = ?",
                [.text(Timestamp.now()), .text(run), .text(device)])
        }
    }

    // MARK: backups

    /// Every verified backup copy, by path.
    public func backups() throws -> [(path: String, sha256: String, size: Int64)] {
        try locked {
            try rows("SELECT path, sha256, size FROM backups ORDER BY path").map { (try $0.text(0), try $0.text(1), try $0.int(2)) }
        }
    }

    /// The devices a run took.
    public func devices(run: String) throws -> [String] {
        try locked { try rows("SELECT device FROM run_devices WHERE run_id = ? ORDER BY device", [.text(run)]).map { try $0.text(0) } }
    }

    /// The verified backup copy at `path`, if one was made (its SHA-256 and size).
    public func backup(path: String) throws -> (sha256: String, size: Int64)? {
        try locked {
            try rows("SELECT sha256, size FROM backups WHERE path = ?", [.text(path)]).first.map { (try $0.text(0), try $0.int(1)) }
        }
    }

    public func recordBackup(path: String, sha256: String, size: Int64) throws {
        try locked {
            try db.query(
                "INSERT OR REPLACE INTO backups (path, sha256, size, verified_at) VALUES (?, ?, ?, ?)",
                [.text(path), .text(sha256), .int(size), .text(Timestamp.now())])
        }
    }

    /// The newest ingest run that had work, and where each of its devices stands (`ceti status`).
    public func lastRun() throws -> RunStatus? {
        try locked {
            guard
                let r = try rows(
                    """
                    SELECT id, started_at, finished_at FROM runs WHERE kind = 'ingest' AND id IN (SELECT run_id FROM run_devices)
                    ORDER BY started_at DESC LIMIT 1
                    """
                ).first
            else { return nil }
            let id = try r.text(0)
            let devices = try rows(
                """
                SELECT d.device, d.completed_at IS NOT NULL,
                       (SELECT COUNT(*) FROM run_files f WHERE f.run_id = d.run_id AND f.device = d.device)
                FROM run_devices d WHERE d.run_id = ? ORDER BY d.device
                """, [.text(id)]
            ).map { RunStatus.Device(device: try $0.text(0), files: Int(try $0.int(2)), complete: $0.optionalInt(1) == 1) }
            return RunStatus(id: id, startedAt: try r.text(1), finished: r.optionalText(2) != nil, devices: devices)
        }
    }
}

/// The last ingest run as `ceti status` shows it.
public struct RunStatus: Sendable, Codable, Equatable {
    public var id: String
    public var startedAt: String
    public var finished: Bool
    public var devices: [Device]

    public struct Device: Sendable, Codable, Equatable {
        public var device: String
        /// Files its manifest lists (or will list).
        public var files: Int
        /// Manifest and _COMPLETE written.
        public var complete: Bool
    }
}
