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

public enum SQLiteError: Error, CustomStringConvertible {
    case open(path: String, message: String)
    case statement(sql: String, message: String)

    public var description: String {
        switch self {
        case .open(let path, let message):
            return "cannot open the ledger \(path): \(message) (check the path, its folder and permissions, or pass --ledger)"
        case .statement(let sql, let message):
            return "ledger query failed: \(message) [\(sql.prefix(60))]"
        }
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
        let flags = readOnly
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
            let message = err.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(err)
            throw SQLiteError.statement(sql: sql, message: message)
        }
    }

    /// Runs a statement and returns its rows.
    @discardableResult
    func query(_ sql: String, _ args: [SQLValue] = []) throws -> [[SQLValue]] {
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
            guard rc == SQLITE_ROW else { throw SQLiteError.statement(sql: sql, message: errorMessage) }
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

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let stmt = statements[sql] { return stmt }
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else {
            throw SQLiteError.statement(sql: sql, message: errorMessage)
        }
        statements[sql] = stmt
        return stmt
    }
}
