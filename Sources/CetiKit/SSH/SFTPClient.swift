import CSSH2
import Foundation

/// An entry of a remote directory.
public struct RemoteFile: Sendable, Equatable, Codable {
    /// The name in name form (`NameCodec`): lossless for any bytes the tag's file system holds.
    public var name: String
    public var size: Int64
    /// Seconds since the epoch, by the tag's clock.
    public var mtime: Int64
    public var isRegular: Bool
    public var isDirectory: Bool
}

/// SFTP over an SSHSession: listing, pipelined downloads, deletes. Blocking, like its session.
public final class SFTPClient {
    let session: SSHSession
    private let sftp: OpaquePointer

    /// libssh2 splits a read into requests of at most 30,000 bytes and reads ahead up to four
    /// times the caller's buffer. 600 kB keeps ~2.4 MB in flight: enough for a fast LAN (and
    /// 100+ MB/s at 20 ms RTT), little to lose when a pull is killed mid-file.
    static let readBuffer = 20 * 30_000

    public init(session: SSHSession) throws {
        self.session = session
        self.sftp = try session.sftp()
    }

    /// An SFTP status from the server names the problem; anything else is the session's
    /// (a lost connection marks the session broken, so later calls fail at once).
    private func failure(_ operation: String) -> SSHError {
        guard session.lastErrno == LIBSSH2_ERROR_SFTP_PROTOCOL else { return session.failure(operation) }
        let code = libssh2_sftp_last_error(sftp)
        let detail =
            code == 2
            ? "no such file"
            : code == 3
                ? "permission denied"
                : code == 4
                    ? "failure"
                    : "SFTP status \(code)"
        return .protocolError(host: session.label, operation: operation, message: detail)
    }

    public func list(_ directory: String) throws -> [RemoteFile] {
        try session.ensureUsable("listing \(directory)")
        guard let dir = Self.withBytes(directory, { libssh2_sftp_open_ex(sftp, $0, $1, 0, 0, LIBSSH2_SFTP_OPENDIR) }) else {
            throw failure("listing \(directory)")
        }
        defer { libssh2_sftp_close_handle(dir) }
        var entries: [RemoteFile] = []
        var name = [CChar](repeating: 0, count: 4096)
        while true {
            var attrs = LIBSSH2_SFTP_ATTRIBUTES()
            let n = name.withUnsafeMutableBufferPointer {
                libssh2_sftp_readdir_ex(dir, $0.baseAddress, $0.count, nil, 0, &attrs)
            }
            if n == 0 { break }
            if n < 0 { throw failure("listing \(directory)") }
            // The name's own bytes, in name form: never repaired with U+FFFD (a name that is not
            // UTF-8 must still name its file when it is read, checked and deleted).
            let entryName = NameCodec.encode(name[0..<Int(n)].map { UInt8(bitPattern: $0) })
            if entryName == "." || entryName == ".." { continue }
            entries.append(Self.file(entryName, attrs))
        }
        return entries.sorted { $0.name < $1.name }
    }

    /// lstat: a symbolic link is reported as such (not regular), never followed.
    public func stat(_ path: String) throws -> RemoteFile {
        try session.ensureUsable("stat \(path)")
        var attrs = LIBSSH2_SFTP_ATTRIBUTES()
        guard Self.withBytes(path, { libssh2_sftp_stat_ex(sftp, $0, $1, LIBSSH2_SFTP_LSTAT, &attrs) }) == 0 else {
            throw failure("stat \(path)")
        }
        return Self.file((path as NSString).lastPathComponent, attrs)
    }

    /// A remote path (components in name form) as the bytes the server must see, and their length.
    private static func withBytes<R>(_ path: String, _ body: (UnsafePointer<CChar>, UInt32) -> R) -> R {
        let bytes = fsPath(path)
        return bytes.withUnsafeBufferPointer { body($0.baseAddress!, UInt32($0.count - 1)) }
    }

    static func file(_ name: String, _ a: LIBSSH2_SFTP_ATTRIBUTES) -> RemoteFile {
        let type = UInt(a.permissions) & UInt(LIBSSH2_SFTP_S_IFMT)
        return RemoteFile(
            name: name, size: Int64(a.filesize), mtime: Int64(a.mtime),
            isRegular: type == UInt(LIBSSH2_SFTP_S_IFREG), isDirectory: type == UInt(LIBSSH2_SFTP_S_IFDIR))
    }

    /// Streams `path` from `offset` to its end into `consume`, which sees each chunk once.
    /// Returns the number of bytes read.
    @discardableResult
    public func read(_ path: String, from offset: Int64, _ consume: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        try session.ensureUsable("reading \(path)")
        guard let handle = Self.withBytes(path, { libssh2_sftp_open_ex(sftp, $0, $1, UInt(LIBSSH2_FXF_READ), 0, LIBSSH2_SFTP_OPENFILE) })
        else {
            throw failure("opening \(path)")
        }
        defer { libssh2_sftp_close_handle(handle) }
        if offset > 0 { libssh2_sftp_seek64(handle, UInt64(offset)) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readBuffer, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let n = libssh2_sftp_read(handle, buffer.baseAddress!.assumingMemoryBound(to: CChar.self), buffer.count)
            if n == 0 { break }
            if n < 0 { throw failure("reading \(path)") }
            try consume(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            total += Int64(n)
        }
        return total
    }

    public func unlink(_ path: String) throws {
        try session.ensureUsable("deleting \(path)")
        guard Self.withBytes(path, { libssh2_sftp_unlink_ex(sftp, $0, $1) }) == 0 else {
            throw failure("deleting \(path)")
        }
    }
}
