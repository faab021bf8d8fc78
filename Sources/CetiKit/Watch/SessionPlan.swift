import Foundation

/// `ceti watch print-manifest`: what the watcher would upload for one session folder — each
/// file with its size, mtime, SHA-256 and key (as its FLAC/gzip where the profile compresses) —
/// and whether the session is complete now. Reads the files; touches no S3 and no ledger.
public struct SessionPlan: Sendable, Encodable {
    public struct File: Sendable, Encodable {
        public var name: String
        public var size: Int64
        public var mtime: Int64
        public var sha256: String
        public var key: String
        /// `flac` or `gzip` when the profile compresses it first.
        public var codec: String?
    }

    public var session: String
    public var root: String
    public var profile: String
    public var bucket: String?
    public var manifestFolder: String
    public var state: String
    public var files: [File] = []
    public var bytes: Int64 = 0

    public static func make(_ path: String, config: WatchConfig, defaultBucket: String?, defaultPrefix: String) throws -> SessionPlan {
        let absolute = FileWalker.absolute(path)
        guard
            let (root, profile) = config.roots.lazy.compactMap({ r -> (WatchConfig.Root, WatchConfig.Profile)? in
                guard let p = config.profiles[r.profile], absolute.hasPrefix(r.path + "/") else { return nil }
                return absolute.dropFirst(r.path.count + 1).split(separator: "/").count == p.sessionDepth ? (r, p) : nil
            }).first
        else {
            throw UsageError(
                "\(path) is not a session folder of a watched root (a folder session_depth levels below one of: "
                    + config.roots.map(\.path).joined(separator: ", ") + ")")
        }
        let name = String(absolute.dropFirst(root.path.count + 1))
        let s = try SessionScanner.snapshot(root: root.path, name: name, profile: profile, excluding: [])
        let prefix = root.prefix ?? defaultPrefix
        var upload = UploadOptions(
            directories: [], bucket: root.bucket ?? defaultBucket ?? "", keyTemplate: try KeyTemplate(KeyTemplate.default), ledgerPath: "")
        upload.prefix = prefix
        let age = Int64(Date().timeIntervalSince1970) - s.newestMTime
        var plan = SessionPlan(
            session: name, root: root.path, profile: root.profile, bucket: root.bucket ?? defaultBucket,
            manifestFolder: Manifest.folder(prefix: prefix, run: "RUN", device: name),
            state: !s.unreadable.isEmpty
                ? "unreadable: " + s.unreadable.joined(separator: "; ")
                : s.files.isEmpty
                    ? "empty: nothing to upload"
                    : !s.missingMarkers.isEmpty
                        ? "incomplete: waiting for " + s.missingMarkers.joined(separator: ", ")
                        : Double(age) < profile.stableForSeconds
                            ? "waiting: last change \(age) s ago, stable_for is \(Int(profile.stableForSeconds)) s"
                            : "complete: would be uploaded at the next scan")
        for f in s.files {
            let kind = profile.compress ? Compressor.kind(of: f.path) : nil
            let sent = kind.map { f.sibling(Compressor.outputPath(f.path, $0)) } ?? f
            plan.files.append(
                File(
                    name: f.relativePath, size: f.fingerprint.size, mtime: f.fingerprint.mtimeNanoseconds / 1_000_000_000,
                    sha256: try FileHashes.sha256(path: f.path), key: upload.key(for: sent, plannedDate: nil),
                    codec: kind.map { $0 == .gzip ? "gzip" : "flac" }))
            plan.bytes += f.fingerprint.size
        }
        return plan
    }

    public var text: String {
        var lines = [
            "session \(session.printable) of \(root.printable) (profile \(profile)): \(state)",
            "manifest: s3://\(bucket ?? "BUCKET")/\(manifestFolder.printable)manifest.json, then _COMPLETE",
        ]
        for f in files {
            lines.append(
                "  \(ByteSize.format(f.size).padding(toLength: 10, withPad: " ", startingAt: 0)) \(f.name.printable) → "
                    + "\(f.codec.map { "(\($0)) " } ?? "")s3://\(bucket ?? "BUCKET")/\(f.key.printable)  sha256 \(f.sha256)")
        }
        lines.append("\(files.count) file(s), \(ByteSize.format(bytes))")
        return lines.joined(separator: "\n")
    }
}
