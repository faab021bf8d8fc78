import Foundation

/// Walks the directories to upload: regular files only, never through a symbolic link (so nothing
/// outside the directory is reached), skipping only ceti's own temporary files — a pull's partial
/// `.ceti-part-…`, a compression's unfinished `NAME.flac.part` / `NAME.csv.gz.part` beside its
/// input — and the ledger itself. Every file a pull brings home (a tag's dot-files and `*.part`
/// files too) is listed, so it can reach S3 and be cleaned off its tag. Names are read as bytes
/// and carried in name form (`NameCodec`): a name that is not UTF-8 is listed under its own bytes. A folder or file it cannot read is not skipped: it is listed in `failures`, for
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
        let rootPath = NameCodec.encodePath(Self.absolute(root))
        var st = stat()
        guard stat(fsPath(rootPath), &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { throw WalkError.notADirectory(root) }
        var out: [LocalFile] = []
        try visit(rootPath, relative: [], into: &out)
        return out.sorted { $0.path < $1.path }
    }

    private mutating func visit(_ dir: String, relative: [String], into out: inout [LocalFile]) throws {
        guard let handle = opendir(fsPath(dir)) else {
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
                    failures.append(
                        WalkFailure(
                            path: dir, reason: String(cString: strerror(errno)), isDirectory: true,
                            device: relative.first ?? Self.unknownDevice))
                }
                break
            }
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: UInt8.self, capacity: 256) { p in
                    NameCodec.encode(UnsafeBufferPointer(start: p, count: strlen(UnsafeRawPointer(p).assumingMemoryBound(to: CChar.self))))
                }
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        let present = Set(names)
        for name in names.sorted() {
            let path = dir + "/" + name
            if name.hasPrefix(NameCodec.partialPrefix) { skipped.append((path, "a partial pull (ceti's own)")); continue }
            if excludedPaths.contains(path) { continue }
            var st = stat()
            guard lstat(fsPath(path), &st) == 0 else {
                let e = errno
                // Gone since the listing (a file renamed meanwhile): nothing to read.
                if e == ENOENT { skipped.append((path, String(cString: strerror(e)))); continue }
                failures.append(
                    WalkFailure(
                        path: path, reason: String(cString: strerror(e)), isDirectory: false,
                        device: relative.first ?? Self.unknownDevice))
                continue
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                try visit(path, relative: relative + [name], into: &out)
            case S_IFREG:
                if Self.isCompressPart(name, beside: present) {
                    skipped.append((path, "unfinished compressed output (ceti's own)")); continue
                }
                let device = relative.first ?? Self.unknownDevice
                if access(fsPath(path), R_OK) != 0 {
                    failures.append(WalkFailure(path: path, reason: String(cString: strerror(errno)), isDirectory: false, device: device))
                    continue
                }
                let rel = relative.isEmpty ? name : (relative.dropFirst() + [name]).joined(separator: "/")
                out.append(
                    LocalFile(
                        path: path, device: device, relativePath: rel,
                        fingerprint: Self.fingerprint(st)))
            case S_IFLNK:
                skipped.append((path, "symbolic link (not followed)"))
            default:
                skipped.append((path, "not a regular file"))
            }
        }
    }

    static func fingerprint(_ st: stat) -> FileFingerprint {
        FileFingerprint(
            size: Int64(st.st_size),
            mtimeNanoseconds: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
            inode: UInt64(st.st_ino))
    }

    /// The fingerprint of a path now, or nil when it is gone.
    public static func fingerprint(path: String) -> FileFingerprint? {
        var st = stat()
        guard lstat(fsPath(path), &st) == 0 else { return nil }
        return fingerprint(st)
    }

    /// What `compress` writes while it works: the output's name + `.part` (`a.flac.part` for
    /// `a.raw` or `a.wav`, `a.csv.gz.part` for `a.csv`), with its input still beside it (the input
    /// goes only after the output is verified and renamed). A tag's own `x.part` is not one.
    static func isCompressPart(_ name: String, beside names: Set<String>) -> Bool {
        guard name.hasSuffix(".part") else { return false }
        let output = String(name.dropLast(5))
        if output.hasSuffix(".gz") {
            return names.contains(String(output.dropLast(3))) && Compressor.kind(of: String(output.dropLast(3))) == .gzip
        }
        if output.hasSuffix(".flac") {
            let stem = String(output.dropLast(5))
            return names.contains {
                $0.count == stem.count + 4 && $0.hasPrefix(stem) && [.flacFromRaw, .flacFromWAV].contains(Compressor.kind(of: $0))
            }
        }
        return false
    }

    /// An absolute, standardized path without a trailing slash.
    public static func absolute(_ path: String) -> String {
        var p = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        p = (p as NSString).standardizingPath
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }
}
