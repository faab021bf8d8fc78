import Foundation

/// A read or write that failed, naming the file (and, for a full disk, what to do).
public enum FileIOError: Error, CustomStringConvertible {
    case read(path: String, message: String)
    case write(path: String, errno: Int32)
    /// A file was to get a name that another file already has; nothing was overwritten.
    case exists(path: String)

    public var description: String {
        switch self {
        case .read(let path, let message): return "cannot read \(path): \(message)"
        case .exists(let path): return "\(path) already exists; it was not overwritten"
        case .write(let path, let e):
            return "cannot write \(path): \(String(cString: strerror(e)))" + (e == ENOSPC ? "; free some space and rerun" : "")
        }
    }
}

/// Whole reads and writes on file descriptors: short transfers continued, EINTR retried.
enum FileIO {
    /// Reads up to `want` bytes at `offset`; fewer only at the end of the file.
    static func readFully(
        _ fd: Int32, _ path: String, _ buffer: UnsafeMutableRawBufferPointer, _ want: Int,
        at offset: Int64
    ) throws -> Int {
        var got = 0
        while got < want {
            let n = pread(fd, buffer.baseAddress! + got, want - got, off_t(offset + Int64(got)))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileIOError.read(path: path, message: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            got += n
        }
        return got
    }

    /// Every byte of the file at `path`, in order, `chunk` bytes at a time (QC's analyzers).
    static func stream(_ path: String, chunk: Int = 1 << 20, _ consume: (UnsafeRawBufferPointer) throws -> Void) throws {
        let fd = open(fsPath(path), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError.read(path: path, message: String(cString: strerror(errno))) }
        defer { close(fd) }
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var offset: Int64 = 0
        while true {
            let got = try readFully(fd, path, buffer, chunk, at: offset)
            if got > 0 { try consume(UnsafeRawBufferPointer(rebasing: buffer[0..<got])) }
            offset += Int64(got)
            if got < chunk { return }
        }
    }

    /// Writes all of `bytes` at the file position, or at `offset` when given.
    static func writeAll(_ fd: Int32, _ path: String, _ bytes: UnsafeRawBufferPointer, at offset: Int64? = nil) throws {
        var done = 0
        while done < bytes.count {
            let n =
                offset.map { pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t($0 + Int64(done))) }
                ?? write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileIOError.write(path: path, errno: errno)
            }
            done += n
        }
    }

    /// Gives a finished file (`part`) its final name, never replacing a file of that name: a hard
    /// link, then the `.part` unlinked (a rename where the filesystem has no hard links, such as
    /// exFAT, checked first); then the folder is synced. `FileIOError.exists` when the name is taken.
    static func publish(_ part: String, as final: String) throws {
        if link(fsPath(part), fsPath(final)) == 0 {
            unlink(fsPath(part))
        } else {
            let e = errno
            if e == EEXIST { throw FileIOError.exists(path: final) }
            guard e == EPERM || e == EOPNOTSUPP || e == ENOSYS || e == EMLINK else { throw FileIOError.write(path: final, errno: e) }
            guard access(fsPath(final), F_OK) != 0 else { throw FileIOError.exists(path: final) }
            guard rename(fsPath(part), fsPath(final)) == 0 else { throw FileIOError.write(path: final, errno: errno) }
        }
        FileHashes.syncDirectory((final as NSString).deletingLastPathComponent)
    }
}
