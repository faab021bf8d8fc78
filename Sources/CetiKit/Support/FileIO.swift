import Foundation

/// A read or write that failed, naming the file (and, for a full disk, what to do).
public enum FileIOError: Error, CustomStringConvertible {
    case read(path: String, message: String)
    case write(path: String, errno: Int32)

    public var description: String {
        switch self {
        case .read(let path, let message): return "cannot read \(path): \(message)"
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
}
