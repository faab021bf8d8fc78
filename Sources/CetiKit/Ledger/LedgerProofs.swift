import Foundation

/// The proofs the custody rule asks for (DESIGN §2). A proof is always *this* file's own: the
/// ledger links this device's source, through its local copy or that copy's verified derivative,
/// to a verified object in the one bucket the command works with. Equal bytes elsewhere (another
/// tag's identical header-only CSV, a scratch bucket) prove nothing.
extension Ledger {
    /// The verified objects in `bucket` (nil: in any bucket, for what the ledger alone can say)
    /// that hold this device file's bytes through its own chain: one of its copies uploaded as it
    /// is, or the verified FLAC/gzip made of one of its copies. Only candidates: S3 must still be
    /// asked (`ObjectCheck`) before anything is deleted.
    public func objectsProving(_ copy: CopyRecord, bucket: String?) throws -> [ObjectRecord] {
        try select(
            ObjectRecord.self,
            """
            FROM objects o JOIN (
                WITH own AS (
                    SELECT c.path, c.sha256, c.size FROM copies c JOIN sources s ON s.id = c.source_id
                    WHERE s.device = ?1 AND s.remote_path = ?2 AND s.sha256 = ?3),
                made AS (
                    SELECT d.output_path AS path, d.output_sha256 AS sha256, d.output_size AS size
                    FROM derivatives d JOIN own ON d.input_path = own.path AND d.input_sha256 = own.sha256)
                SELECT path, sha256, size FROM own UNION SELECT path, sha256, size FROM made) chain
              ON o.local_path = chain.path AND o.sha256 = chain.sha256 AND o.size = chain.size
            WHERE ?4 IS NULL OR o.bucket = ?4 ORDER BY o.verified_at
            """, [.text(copy.device), .text(copy.remotePath), .text(copy.sha256), bucket.map(SQLValue.text) ?? .null])
    }

    /// What the ledger last recorded for the bytes at a local path: the SHA-256 of a pulled (or
    /// card) copy, or of a compressed output. A file whose bytes differ from this was changed
    /// after ceti verified it and must not be passed on as that file.
    public func recordedContent(localPath: String) throws -> RecordedContent? {
        try locked {
            try rows(
                """
                SELECT sha256, size, verified_at, 'copy' FROM copies WHERE path = ?
                UNION ALL
                SELECT output_sha256, output_size, verified_at, 'derivative' FROM derivatives WHERE output_path = ?
                ORDER BY 3 DESC LIMIT 1
                """, [.text(localPath), .text(localPath)]
            ).first.map { r in
                RecordedContent(sha256: try r.text(0), size: try r.int(1), isDerivative: r.optionalText(3) == "derivative")
            }
        }
    }

    /// Drops a verified object that S3 no longer holds as recorded, so no later step takes the
    /// ledger's memory of it for proof.
    public func forgetObject(bucket: String, key: String) throws {
        try locked { _ = try db.query("DELETE FROM objects WHERE bucket = ? AND key = ?", [.text(bucket), .text(key)]) }
    }
}

/// The SHA-256 the ledger recorded for a local file, and how it came to be there.
public struct RecordedContent: Sendable, Equatable {
    public var sha256: String
    public var size: Int64
    /// A compressed output (else a pulled or copied file).
    public var isDerivative: Bool

    public var origin: String { isDerivative ? "compressed" : "pulled" }
}

/// A device file's verified local copy with what became of it: the input of a plan made before
/// a pull (`Ledger.pulledFiles`).
public struct PulledFile: Sendable, Equatable {
    public var copy: CopyRecord
    /// The verified derivatives made of exactly this copy: path → size.
    public var derivatives: [String: Int64] = [:]
    /// Listed by a complete manifest.
    public var complete = false
}

extension Ledger {
    /// Every verified copy of a device's files, with its derivatives and whether a complete
    /// manifest lists it, by remote path, newest copy first: one query for a whole tag.
    public func pulledFiles(device: String) throws -> [String: [PulledFile]] {
        Dictionary(grouping: try pulled(where: "s.device = ?", [.text(device)]), by: \.copy.remotePath)
    }

    /// A pulled copy done locally whose upload waits for S3 (ingest without an uplink).
    public func enqueue(_ copy: CopyRecord) throws {
        try locked {
            try db.query(
                "INSERT OR REPLACE INTO upload_queue (local_path, device, remote_path, sha256, queued_at) VALUES (?, ?, ?, ?, ?)",
                [.text(copy.localPath), .text(copy.device), .text(copy.remotePath), .text(copy.sha256), .text(Timestamp.now())])
        }
    }

    /// The copy is uploaded and listed: no longer waiting.
    public func dequeue(localPath: String) throws {
        try locked { _ = try db.query("DELETE FROM upload_queue WHERE local_path = ?", [.text(localPath)]) }
    }

    /// What earlier runs left waiting for S3, by device (each file's newest copy).
    public func queuedFiles() throws -> [String: [PulledFile]] {
        // Only the copies the queue names are read (not every file the ledger ever pulled).
        var newest: [String: PulledFile] = [:]
        for f in try pulled(where: "c.path IN (SELECT local_path FROM upload_queue)") where newest[f.copy.localPath] == nil {
            newest[f.copy.localPath] = f
        }
        return Dictionary(grouping: newest.values.filter { !$0.complete }, by: \.copy.device)
    }

    /// One row per copy and derivative, merged per copy; newest copy first. `filter`: the SQL
    /// condition on the sources `s` and copies `c` to take.
    private func pulled(where filter: String, _ args: [SQLValue] = []) throws -> [PulledFile] {
        let found = try locked {
            try rows(
                """
                SELECT \(CopyRecord.columns), d.output_path, d.output_size, rd.completed_at
                FROM sources s JOIN copies c ON c.source_id = s.id
                LEFT JOIN derivatives d ON d.input_path = c.path AND d.input_sha256 = s.sha256
                LEFT JOIN run_files f ON f.device = s.device AND f.remote_path = s.remote_path AND f.sha256 = s.sha256
                LEFT JOIN run_devices rd ON rd.run_id = f.run_id AND rd.device = f.device
                WHERE \(filter) ORDER BY c.id DESC
                """, args)
        }
        var out: [PulledFile] = []
        var index: [String: Int] = [:]
        for row in found {
            let copy = try CopyRecord(row)
            let id = "\(copy.device)\u{0}\(copy.remotePath)\u{0}\(copy.localPath)\u{0}\(copy.sha256)"
            let i =
                index[id]
                ?? {
                    out.append(PulledFile(copy: copy)); index[id] = out.count - 1; return out.count - 1
                }()
            if let output = row.optionalText(8) { out[i].derivatives[output] = row.optionalInt(9) ?? -1 }
            if row.optionalText(10) != nil { out[i].complete = true }
        }
        return out
    }
}
