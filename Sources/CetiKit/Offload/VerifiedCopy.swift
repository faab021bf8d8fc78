import Foundation

/// One read of a source file feeding several destinations, each written as `.part`, fsynced,
/// dropped from the page cache (so the read-back comes from the disk, not from memory), read
/// back and compared by SHA-256, then given its final name — which is never overwritten.
enum VerifiedCopy {
    enum CopyError: Error, CustomStringConvertible {
        case read(path: String, message: String)
        case mismatch(path: String)
        case exists(path: String)

        var description: String {
            switch self {
            case .read(let path, let message): return "cannot read \(path): \(message); the card may have been removed"
            case .mismatch(let path): return "\(path) read back different bytes than were written; that copy was removed"
            case .exists(let path): return "\(path) appeared while copying; nothing was overwritten"
            }
        }
    }

    static let chunk = 1 << 20

    /// Returns the SHA-256 (hex) of what was copied. On any failure no destination is left behind.
    static func copy(_ source: String, to destinations: [String], mtime: timespec) throws -> String {
        let input = open(fsPath(source), O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw CopyError.read(path: source, message: String(cString: strerror(errno))) }
        defer { close(input) }
        posix_fadvise(input, 0, 0, POSIX_FADV_SEQUENTIAL)
        let parts = destinations.map { $0 + ".part" }
        var fds: [Int32] = []
        var done = false
        defer {
            fds.forEach { close($0) }
            if !done { parts.forEach { unlink(fsPath($0)) } }
        }
        for p in parts {
            try? FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let fd = open(fsPath(p), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw FileIOError.write(path: p, errno: errno) }
            fds.append(fd)
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        var sha = Digest(.sha256)
        var offset: Int64 = 0
        while true {
            let n = read(input, buffer.baseAddress, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw CopyError.read(path: source, message: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            sha.update(bytes)
            for (fd, p) in zip(fds, parts) {
                try FileIO.writeAll(fd, p, bytes)
            }
            offset += Int64(n)
        }
        let expected = sha.finalize().hex
        var times = [timespec(tv_sec: mtime.tv_sec, tv_nsec: mtime.tv_nsec), mtime]
        for (fd, p) in zip(fds, parts) {
            guard fsync(fd) == 0 else { throw FileIOError.write(path: p, errno: errno) }
            futimens(fd, &times)
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        }
        for p in parts {
            guard try FileHashes.sha256(path: p) == expected else { throw CopyError.mismatch(path: p) }
        }
        // link + unlink instead of rename: a name that exists is never replaced.
        var linked: [String] = []
        for (p, final) in zip(parts, destinations) {
            guard link(fsPath(p), fsPath(final)) == 0 else {
                let e = errno
                linked.forEach { unlink(fsPath($0)) }
                throw e == EEXIST ? CopyError.exists(path: final) : FileIOError.write(path: final, errno: e)
            }
            linked.append(final)
        }
        parts.forEach { unlink(fsPath($0)) }
        Set(destinations.map { ($0 as NSString).deletingLastPathComponent }).forEach(FileHashes.syncDirectory)
        done = true
        return expected
    }
}
