import CSysShim
import Foundation

/// A file on a card, with the birth time that names its copy.
struct CardFile {
    var path: String
    var relative: String
    var size: Int64
    var mtime: timespec
    /// Milliseconds since the epoch: birth time (statx) where the filesystem keeps it, else mtime.
    var epochMilliseconds: Int64
}

/// Every regular file below a card's root, in every folder, without the litter operating systems
/// leave on cards, never through a symbolic link.
enum CardWalker {
    static let litter: Set = [
        ".Trashes", ".Spotlight-V100", ".fseventsd", "System Volume Information", ".DS_Store",
        ".TemporaryItems", "$RECYCLE.BIN",
    ]

    static func isLitter(_ name: String) -> Bool { litter.contains(name) || name.hasPrefix("._") }

    /// A folder or file below the root that could not be read, with the errno text.
    struct Failure: Equatable {
        var path: String
        var relative: String
        var reason: String
        var isDirectory: Bool

        var description: String { "cannot read \(isDirectory ? "folder " : "")\(path): \(reason)" }
    }

    /// The card's files, and what below its root could not be read (the rest is still listed).
    /// Paths come back in name form (`NameCodec`): a card's name that is not UTF-8 is kept as bytes.
    static func walk(_ root: String) throws -> (files: [CardFile], failures: [Failure]) {
        let root = NameCodec.encodePath(root)
        var st = stat()
        guard stat(fsPath(root), &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw UsageError("\(root) is not a folder: give the card's mount point, e.g. /media/op/3531-3034")
        }
        guard access(fsPath(root), R_OK | X_OK) == 0 else {
            throw UsageError("cannot read \(root): \(String(cString: strerror(errno))); check that the card is mounted and readable")
        }
        var out: [CardFile] = []
        var failures: [Failure] = []
        visit(root, relative: "", into: &out, failures: &failures)
        return (
            out.sorted { ($0.epochMilliseconds, $0.relative) < ($1.epochMilliseconds, $1.relative) },
            failures.sorted { $0.relative < $1.relative }
        )
    }

    private static func visit(_ dir: String, relative: String, into out: inout [CardFile], failures: inout [Failure]) {
        guard let handle = opendir(fsPath(dir)) else {
            failures.append(Failure(path: dir, relative: relative, reason: String(cString: strerror(errno)), isDirectory: true))
            return
        }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(handle) else {
                // NULL with errno set: the listing broke off (an I/O error on the card), not its end.
                if errno != 0 {
                    failures.append(Failure(path: dir, relative: relative, reason: String(cString: strerror(errno)), isDirectory: true))
                }
                break
            }
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: UInt8.self, capacity: 256) { p in
                    NameCodec.encode(UnsafeBufferPointer(start: p, count: strlen(UnsafeRawPointer(p).assumingMemoryBound(to: CChar.self))))
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(handle)
        for name in names.sorted() where !isLitter(name) {
            let path = dir + "/" + name
            let rel = relative.isEmpty ? name : relative + "/" + name
            var st = stat()
            guard lstat(fsPath(path), &st) == 0 else {
                failures.append(Failure(path: path, relative: rel, reason: String(cString: strerror(errno)), isDirectory: false))
                continue
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: visit(path, relative: rel, into: &out, failures: &failures)
            case S_IFREG:
                guard access(fsPath(path), R_OK) == 0 else {
                    failures.append(Failure(path: path, relative: rel, reason: String(cString: strerror(errno)), isDirectory: false))
                    continue
                }
                var sec: Int64 = 0
                var nsec: UInt32 = 0
                let ms =
                    ceti_birth_time(fsPath(path), &sec, &nsec) == 0
                    ? sec * 1000 + Int64(nsec) / 1_000_000
                    : Int64(st.st_mtim.tv_sec) * 1000 + Int64(st.st_mtim.tv_nsec) / 1_000_000
                out.append(CardFile(path: path, relative: rel, size: Int64(st.st_size), mtime: st.st_mtim, epochMilliseconds: ms))
            default: continue
            }
        }
    }
}
