import Foundation

/// Counts, per file name, how often a file in a directory was opened for reading and closed again
/// (inotify's IN_CLOSE_NOWRITE), whoever did it: the kernel's own account of the reads, not the
/// code's. One full read of a file is one open and close, whatever the number of read calls.
/// Opens and write-closes are watched too, though not counted: inotify merges an event with the
/// identical one queued just before it, and an open between two reads keeps them apart.
final class FileReadCounter {
    private let fd: Int32
    private var counts: [String: Int] = [:]

    init(directory: String) throws {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        guard inotify_add_watch(fd, directory, UInt32(IN_OPEN | IN_CLOSE_NOWRITE | IN_CLOSE_WRITE)) >= 0 else {
            close(fd)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
    }

    deinit { close(fd) }

    /// Read-only opens (closed since) of each name so far.
    func reads() -> [String: Int] {
        let size = 64 * 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer, size)
            if n <= 0 { break }
            var offset = 0
            while offset < n {
                let event = buffer.advanced(by: offset).assumingMemoryBound(to: inotify_event.self).pointee
                let header = MemoryLayout<inotify_event>.size
                if event.len > 0, event.mask & UInt32(IN_CLOSE_NOWRITE) != 0 {
                    let name = String(cString: buffer.advanced(by: offset + header).assumingMemoryBound(to: CChar.self))
                    counts[name, default: 0] += 1
                }
                offset += header + Int(event.len)
            }
        }
        return counts
    }
}
