import CSQLite
import Foundation

/// A value bound into or read out of a SQLite statement.
public enum SQLValue: Sendable, Equatable {
    case null
    case int(Int64)
    case text(String)

    var int: Int64? { if case .int(let v) = self { return v } else { return nil } }
    var text: String? { if case .text(let v) = self { return v } else { return nil } }
}

/// A ledger failure, said in the operator's terms: the ledger's path and SQLite's own message,
/// never the SQL that failed (that stays in `sql` for a debugger).
public enum SQLiteError: Error, CustomStringConvertible {
    /// The file could not be opened or created at all (a wrong path, folder or permission).
    case open(path: String, message: String)
    /// A statement failed; `code` is SQLite's extended result code.
    case statement(path: String, code: Int32, message: String, sql: String)
    /// The file is not a SQLite database, or `PRAGMA quick_check` found a damaged page.
    case damaged(path: String, message: String)

    public var path: String {
        switch self {
        case .open(let p, _), .statement(let p, _, _, _), .damaged(let p, _): return p
        }
    }

    /// True when the file itself is unusable (not a database, or a corrupted page).
    public var isDamage: Bool {
        switch self {
        case .damaged: return true
        case .statement(_, let code, _, _): return Self.isDamage(code)
        case .open: return false
        }
    }

    static func isDamage(_ code: Int32) -> Bool {
        let primary = code & 0xff
        return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB
    }

    private static func damaged(_ path: String, _ message: String) -> String {
        "the ledger \(path) is damaged (\(message)): restore it from a copy, or move it aside "
            + "(mv \(shellWord(path)) \(shellWord(path + ".damaged"))) so that ceti starts a new one; s3upload then "
            + "rebuilds what S3 holds from the bucket's objects"
    }

    public var description: String {
        switch self {
        case .open(_, let message):
            return "cannot open the ledger \(path): \(message) (check the path, its folder and permissions, or pass --ledger)"
        case .damaged(_, let message):
            return Self.damaged(path, message)
        case .statement(_, _, let message, _) where isDamage:
            return Self.damaged(path, message)
        case .statement(_, let code, let message, _):
            switch code & 0xff {
            case SQLITE_BUSY, SQLITE_LOCKED:
                return "the ledger \(path) is busy (\(message)): another ceti is writing it; try again when it has finished"
            case SQLITE_FULL:
                return "cannot write the ledger \(path): \(message) (free space on its disk, then run again)"
            case SQLITE_READONLY, SQLITE_PERM, SQLITE_CANTOPEN:
                return "cannot write the ledger \(path): \(message) (check the file's and its folder's permissions, or pass --ledger)"
            case SQLITE_IOERR:
                return "cannot read or write the ledger \(path): \(message) (check its disk)"
            default:
                return "the ledger \(path): \(message)"
            }
        }
    }

    /// `path` as one shell word, quoted only when it needs to be.
    static func shellWord(_ s: String) -> String {
        let plain = s.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || "/._-+,:@%=".unicodeScalars.contains($0)
        }
        return plain && !s.isEmpty ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// The thinnest wrapper over libsqlite3 that ceti needs: prepared statements with positional
/// bindings, rows as arrays. One connection, used under the caller's lock.
final class SQLiteDatabase {
    private var db: OpaquePointer?
    let path: String
    private var statements: [String: OpaquePointer] = [:]
    // SQLITE_TRANSIENT is a macro casting -1 to a function pointer; Swift cannot import it.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(path: String, readOnly: Bool) throws {
        self.path = path
        let flags =
            readOnly
            ? SQLITE_OPEN_READONLY
            : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(rc)"
            sqlite3_close(handle)
            throw SQLiteError.open(path: path, message: message)
        }
        db = handle
        sqlite3_busy_timeout(handle, 10_000)
    }

    deinit {
        for (_, stmt) in statements { sqlite3_finalize(stmt) }
        sqlite3_close(db)
    }

    func execute(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &err) != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? errorMessage
            sqlite3_free(err)
            throw SQLiteError.statement(path: path, code: sqlite3_extended_errcode(db), message: message, sql: sql)
        }
    }

    /// Runs a statement and returns its rows.
    /// Statements run so far (the ledger's callers hold its lock): tests bound the queries per file.
    private(set) var executed = 0

    @discardableResult
    func query(_ sql: String, _ args: [SQLValue] = []) throws -> [[SQLValue]] {
        executed += 1
        let stmt = try prepared(sql)
        defer {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
        }
        for (i, arg) in args.enumerated() {
            let index = Int32(i + 1)
            switch arg {
            case .null: sqlite3_bind_null(stmt, index)
            case .int(let v): sqlite3_bind_int64(stmt, index, v)
            case .text(let v): sqlite3_bind_text(stmt, index, v, -1, Self.transient)
            }
        }
        var rows: [[SQLValue]] = []
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw failure(sql) }
            var row: [SQLValue] = []
            for c in 0..<sqlite3_column_count(stmt) {
                switch sqlite3_column_type(stmt, c) {
                case SQLITE_NULL: row.append(.null)
                case SQLITE_INTEGER: row.append(.int(sqlite3_column_int64(stmt, c)))
                default: row.append(.text(String(cString: sqlite3_column_text(stmt, c))))
                }
            }
            rows.append(row)
        }
        return rows
    }

    var changes: Int { Int(sqlite3_changes(db)) }

    private var errorMessage: String { String(cString: sqlite3_errmsg(db)) }

    private func failure(_ sql: String) -> SQLiteError {
        .statement(path: path, code: sqlite3_extended_errcode(db), message: errorMessage, sql: sql)
    }

    /// `PRAGMA quick_check`: every page of the file is read and the structure of its tables and
    /// indexes checked (not whether each index matches its table, which `integrity_check` adds at
    /// several times the cost). Throws `.damaged` for a file that is not a database or has a
    /// broken page, naming SQLite's first finding on one line.
    func quickCheck() throws {
        let sql = "PRAGMA quick_check"
        defer { if let stmt = statements.removeValue(forKey: sql) { sqlite3_finalize(stmt) } }
        let rows: [[SQLValue]]
        do {
            rows = try query(sql)
        } catch SQLiteError.statement(_, let code, let message, _) where SQLiteError.isDamage(code) {
            throw SQLiteError.damaged(path: path, message: message)
        }
        let findings = rows.compactMap { $0.first?.text }.filter { $0 != "ok" }
        guard let first = findings.first else { return }
        let line = first.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("***") }
            .joined(separator: "; ")
        let message = line.isEmpty ? "quick_check failed" : line
        throw SQLiteError.damaged(path: path, message: message.count > 160 ? String(message.prefix(157)) + "..." : message)
    }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let stmt = statements[sql] { return stmt }
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else {
            throw failure(sql)
        }
        statements[sql] = stmt
        return stmt
    }
}
