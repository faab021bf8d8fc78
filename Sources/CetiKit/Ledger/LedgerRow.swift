/// One result row, read in the order of its record type's own column list. A NULL or a value of
/// another type where the schema allows none means the file was written by something else: it is
/// reported as a damaged ledger, never a crash.
struct Row {
    let values: [SQLValue]
    let path: String

    func text(_ i: Int) throws -> String {
        guard let v = values[i].text else { throw SQLiteError.damaged(path: path, message: "column \(i) of a row is not text") }
        return v
    }

    func int(_ i: Int) throws -> Int64 {
        guard let v = values[i].int else { throw SQLiteError.damaged(path: path, message: "column \(i) of a row is not a number") }
        return v
    }

    func optionalText(_ i: Int) -> String? { values[i].text }
    func optionalInt(_ i: Int) -> Int64? { values[i].int }
}

/// A record the ledger stores: the columns it is read from (in that order) and its one decoder.
protocol LedgerRow {
    static var columns: String { get }
    init(_ row: Row) throws
}

extension FileRecord: LedgerRow {
    static let columns = "path, size, mtime_ns, inode, sha256, planned_date"
    init(_ r: Row) throws {
        self.init(
            path: try r.text(0),
            fingerprint: FileFingerprint(size: try r.int(1), mtimeNanoseconds: try r.int(2), inode: UInt64(bitPattern: try r.int(3))),
            sha256: r.optionalText(4), plannedDate: try r.text(5))
    }
}

extension ObjectRecord: LedgerRow {
    static let columns = "o.bucket, o.key, o.device, o.local_path, o.size, o.sha256, o.etag, o.part_size, o.verified_at"
    init(_ r: Row) throws {
        self.init(
            bucket: try r.text(0), key: try r.text(1), device: try r.text(2), localPath: try r.text(3), size: try r.int(4),
            sha256: try r.text(5), etag: try r.text(6), partSize: try r.int(7), verifiedAt: try r.text(8))
    }
}

extension UploadRecord: LedgerRow {
    static let columns = "bucket, key, upload_id, device, local_path, size, mtime_ns, inode, sha256, part_size, started_at"
    init(_ r: Row) throws {
        self.init(
            bucket: try r.text(0), key: try r.text(1), uploadID: try r.text(2), device: try r.text(3), localPath: try r.text(4),
            fingerprint: FileFingerprint(size: try r.int(5), mtimeNanoseconds: try r.int(6), inode: UInt64(bitPattern: try r.int(7))),
            sha256: try r.text(8), partSize: try r.int(9), startedAt: try r.text(10))
    }
}

extension PartRecord: LedgerRow {
    static let columns = "part_number, size, md5, etag"
    init(_ r: Row) throws {
        self.init(number: Int(try r.int(0)), size: try r.int(1), md5: try r.text(2), etag: try r.text(3))
    }
}

extension CopyRecord: LedgerRow {
    /// From `sources s JOIN copies c ON c.source_id = s.id`.
    static let columns = "s.device, s.remote_path, s.size, s.mtime, s.sha256, c.path, s.remote_verified, c.verified_at"
    init(_ r: Row) throws {
        self.init(
            device: try r.text(0), remotePath: try r.text(1), size: try r.int(2), mtime: try r.int(3), sha256: try r.text(4),
            localPath: try r.text(5), remoteVerified: try r.int(6) == 1, verifiedAt: try r.text(7))
    }
}

extension DerivativeRecord: LedgerRow {
    static let columns = """
        input_path, input_sha256, input_size, output_path, output_sha256, output_size, codec, parameters, flac_md5, verified_at
        """
    init(_ r: Row) throws {
        self.init(
            inputPath: try r.text(0), inputSHA256: try r.text(1), inputSize: try r.int(2), outputPath: try r.text(3),
            outputSHA256: try r.text(4), outputSize: try r.int(5), codec: try r.text(6), parameters: try r.text(7),
            flacMD5: r.optionalText(8), verifiedAt: try r.text(9))
    }
}

extension Ledger {
    /// A query's rows, read through `Row` (a NULL where none may be is a damaged ledger, not a crash).
    func rows(_ sql: String, _ args: [SQLValue] = []) throws -> [Row] {
        try db.query(sql, args).map { Row(values: $0, path: path) }
    }

    /// `SELECT <T's columns> <rest>`, each row decoded by T's one decoder.
    func select<T: LedgerRow>(_ type: T.Type, _ rest: String, _ args: [SQLValue] = []) throws -> [T] {
        try locked { try db.query("SELECT \(T.columns) " + rest, args).map { try T(Row(values: $0, path: path)) } }
    }
}
