import Foundation

/// The scan step: a watched root → its sessions (each folder exactly `session_depth` levels
/// below it, whose name matches `include_regex`), every file in each (ceti's own temporary files
/// and the `ignore` patterns left out), with the fingerprint that tells whether it changed.
/// `processed/` directly in the root is where `after_upload: move` puts sessions: never a session.
enum SessionScanner {
    static let processedFolder = "processed"

    enum ScanError: Error, CustomStringConvertible {
        case rootMissing(String)

        var description: String {
            switch self {
            case .rootMissing(let path): return "watched root \(path) is not there (not mounted?); skipped this scan"
            }
        }
    }

    static func scan(_ root: WatchConfig.Root, profile: WatchConfig.Profile, excluding excluded: Set<String>) throws -> [SessionSnapshot] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw ScanError.rootMissing(root.path)
        }
        let include = profile.includeRegex.flatMap { try? Regex($0) }
        return try folders(below: root.path, depth: profile.sessionDepth).compactMap { name in
            let last = (name as NSString).lastPathComponent
            if let include, (try? include.firstMatch(in: last)) == nil { return nil }
            return try snapshot(root: root.path, name: name, profile: profile, excluding: excluded)
        }
    }

    /// The folders exactly `depth` levels below `root` (paths below it, sorted), never through a
    /// symbolic link, leaving out hidden folders and `processed/` at the top.
    static func folders(below root: String, depth: Int) throws -> [String] {
        var level = [""]
        for d in 0..<depth {
            var next: [String] = []
            for rel in level {
                let dir = rel.isEmpty ? root : root + "/" + rel
                let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
                for name in names.sorted() where !name.hasPrefix(".") && !(d == 0 && name == processedFolder) {
                    var st = stat()
                    guard lstat(dir + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { continue }
                    next.append(rel.isEmpty ? name : rel + "/" + name)
                }
            }
            level = next
        }
        return level
    }

    static func snapshot(root: String, name: String, profile: WatchConfig.Profile, excluding excluded: Set<String>) throws
        -> SessionSnapshot
    {
        let path = root + "/" + name
        var walker = FileWalker(excludedPaths: excluded)
        let found = try walker.walk(path)
        let base = NameCodec.encodePath(FileWalker.absolute(path)) + "/"
        var files: [LocalFile] = []
        for var f in found {
            let rel = String(f.path.dropFirst(base.count))
            let fileName = (rel as NSString).lastPathComponent
            if profile.ignore.contains(where: { fnmatch($0, fileName, 0) == 0 || fnmatch($0, rel, 0) == 0 }) { continue }
            f.device = name
            f.relativePath = rel
            files.append(f)
        }
        var digest = Digest(.sha256)
        for f in files {
            digest.update(Array("\(f.relativePath)\u{0}\(f.fingerprint.size)\u{0}\(f.fingerprint.mtimeNanoseconds)\n".utf8))
        }
        return SessionSnapshot(
            root: root, name: name, path: path, files: files, fingerprint: digest.finalize().hex,
            newestMTime: (files.map(\.fingerprint.mtimeNanoseconds).max() ?? 0) / 1_000_000_000,
            // Looked for on disk: a marker may well match an ignore pattern (`.done` and `.*`).
            missingMarkers: profile.requiredMarkers.filter { !FileManager.default.fileExists(atPath: path + "/" + $0) },
            unreadable: walker.failures.map(\.description))
    }
}
