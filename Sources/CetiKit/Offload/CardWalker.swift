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
    static let litter: Set = [".Trashes", ".Spotlight-V100", ".fseventsd", "System Volume Information", ".DS_Store",
                              ".TemporaryItems", "$RECYCLE.BIN"]

    static func isLitter(_ name: String) -> Bool { litter.contains(name) || name.hasPrefix("._") }

    static func walk(_ root: String) throws -> [CardFile] {
        var st = stat()
        guard stat(root, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw UsageError("\(root) is not a folder: give the card's mount point, e.g. /media/op/3531-3034")
        }
        var out: [CardFile] = []
        try visit(root, relative: "", into: &out)
        return out.sorted { ($0.epochMilliseconds, $0.relative) < ($1.epochMilliseconds, $1.relative) }
    }

    private static func visit(_ dir: String, relative: String, into out: inout [CardFile]) throws {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
            throw UsageError("cannot read \(dir): check that the card is mounted and readable")
        }
        for name in names.sorted() where !isLitter(name) {
            let path = dir + "/" + name
            let rel = relative.isEmpty ? name : relative + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: try visit(path, relative: rel, into: &out)
            case S_IFREG:
                var sec: Int64 = 0
                var nsec: UInt32 = 0
                let ms = ceti_birth_time(path, &sec, &nsec) == 0
                    ? sec * 1000 + Int64(nsec) / 1_000_000
                    : Int64(st.st_mtim.tv_sec) * 1000 + Int64(st.st_mtim.tv_nsec) / 1_000_000
                out.append(CardFile(path: path, relative: rel, size: Int64(st.st_size), mtime: st.st_mtim, epochMilliseconds: ms))
            default: continue
            }
        }
    }
}
