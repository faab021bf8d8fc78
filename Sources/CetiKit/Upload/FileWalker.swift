import Foundation

/// Walks the directories to upload: regular files only, never through a symbolic link (so nothing
/// outside the directory is reached), skipping hidden names, unfinished `*.part` files and the
/// ledger itself. A folder or file it cannot read is not skipped: it is listed in `failures`, for
/// the command to report as failed (the rest of the walk goes on).
public struct FileWalker {
    public static let unknownDevice = "unknown-device"

    public var excludedPaths: Set<String>
    public var skipped: [(path: String, reason: String)] = []
    /// Folders and files that could not be read, with the errno text.
    public var failures: [WalkFailure] = []

    public struct WalkFailure: Sendable, Equatable {
        public var path: String
        public var reason: String
        public var isDirectory: Bool
        /// The device folder it lies in (as `LocalFile.device`).
        public var device: String

        public var description: String { "cannot read \(isDirectory ? "folder " : "")\(path): \(reason)" }
    }

    public init(excludedPaths: Set<String>) {
        self.excludedPaths = excludedPaths
    }

    public enum WalkError: Error, CustomStringConvertible {
        case notADirectory(String)
        case unreadable(String, String)
        public var description: String {
            switch self {
            case .notADirectory(let p): return "\(p) is not a directory: give the folder that holds the device folders"
            case .unreadable(let p, let why): return "cannot read \(p): \(why)"
            }
        }
    }

    public mutating func walk(_ root: String) throws -> [LocalFile] {
        let rootPath = Self.absolute(root)
        var st = stat()
        guard stat(rootPath, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { throw WalkError.notADirectory(root) }
        var out: [LocalFile] = []
        try visit(rootPath, relative: [], into: &out)
        return out.sorted { $0.path < $1.path }
    }

    private mutating func visit(_ dir: String, relative: [String], into out: inout [LocalFile]) throws {
        guard let handle = opendir(dir) else {
            let why = String(cString: strerror(errno))
            if relative.isEmpty { throw WalkError.unreadable(dir, why) }
            failures.append(WalkFailure(path: dir, reason: why, isDirectory: true, device: relative.first ?? Self.unknownDevice))
            return
        }
        defer { closedir(handle) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(handle) else {
                // NULL with errno set: the listing broke off (an I/O error), not its end.
                if errno != 0 {
                    failures.append(WalkFailure(path: dir, reason: String(cString: strerror(errno)), isDirectory: true,
                                                device: relative.first ?? Self.unknownDevice))
                }
                break
            }
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        for name in names.sorted() {
            let path = dir + "/" + name
            if name.hasPrefix(".") { skipped.append((path, "hidden")); continue }
            if excludedPaths.contains(path) { continue }
            var st = stat()
            guard lstat(path, &st) == 0 else {
                let e = errno
                // Gone since the listing (a file renamed meanwhile): nothing to read.
                if e == ENOENT { skipped.append((path, String(cString: strerror(e)))); continue }
                failures.append(WalkFailure(path: path, reason: String(cString: strerror(e)), isDirectory: false,
                                            device: relative.first ?? Self.unknownDevice))
                continue
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                try visit(path, relative: relative + [name], into: &out)
            case S_IFREG:
                if name.hasSuffix(".part") { skipped.append((path, "unfinished .part file")); continue }
                let device = relative.first ?? Self.unknownDevice
                if access(path, R_OK) != 0 {
                    failures.append(WalkFailure(path: path, reason: String(cString: strerror(errno)), isDirectory: false, device: device))
                    continue
                }
                let rel = relative.isEmpty ? name : (relative.dropFirst() + [name]).joined(separator: "/")
                out.append(LocalFile(path: path, device: device, relativePath: rel,
                                     fingerprint: Self.fingerprint(st)))
            case S_IFLNK:
                skipped.append((path, "symbolic link (not followed)"))
            default:
                skipped.append((path, "not a regular file"))
            }
        }
    }

    static func fingerprint(_ st: stat) -> FileFingerprint {
        FileFingerprint(size: Int64(st.st_size),
                        mtimeNanoseconds: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                        inode: UInt64(st.st_ino))
    }

    /// The fingerprint of a path now, or nil when it is gone.
    public static func fingerprint(path: String) -> FileFingerprint? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return fingerprint(st)
    }

    /// An absolute, standardized path without a trailing slash.
    public static func absolute(_ path: String) -> String {
        var p = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        p = (p as NSString).standardizingPath
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }
}
