import Foundation

/// An exclusive lock on a file, held for as long as this object lives. The kernel drops it when
/// the process dies, kill -9 included, so a stale lock never blocks the next run.
final class FileLock: Sendable {
    private let fd: Int32

    /// nil when another process holds the lock.
    init?(path: String) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileIOError.write(path: path, errno: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            return nil
        }
    }

    /// A lock on a folder itself (no file of ours inside it); nil when another holder has it.
    init?(directory: String) throws {
        fd = open(fsPath(directory), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError.read(path: directory, message: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            return nil
        }
    }

    deinit { close(fd) }
}
