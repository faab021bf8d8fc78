import Foundation

/// `ceti general_offload`: check the device ID, then copy every file of the card to the dated
/// backup and to staging, verified, under names from the files' birth times.
public enum OffloadRun {
    public struct Summary: Sendable, Codable {
        public var device: String
        public var registry: String
        public var backup: String
        public var staging: String
        public var dryRun: Bool
        public var files: [OffloadOutcome]
        public var seconds: Double

        public var exitCode: Int32 { files.contains { $0.action == .failed } ? 1 : 0 }

        public var line: String {
            func n(_ a: OffloadOutcome.Action) -> Int { files.filter { $0.action == a }.count }
            let bytes = files.filter { $0.action == .copied || $0.action == .restaged }.reduce(0) { $0 + $1.size }
            return "\(device): " + (dryRun ? "\(n(.wouldCopy)) to copy, " : "\(n(.copied)) copied, \(n(.restaged)) staged again, ")
                + "\(n(.alreadySaved)) already saved, \(n(.failed)) failed; \(ByteSize.format(bytes)) in "
                + String(format: "%.1f s", seconds) + (dryRun ? "" : " → \(backup) and \(staging)")
        }
    }

    public static func checkDevice(_ id: String, in registry: DeviceRegistry) throws {
        guard registry.ids.contains(id) else {
            let near = registry.suggestions(for: id)
            throw UsageError("device ID '\(id)' is not registered (list: \(registry.source))"
                             + (near.isEmpty ? "; check the label on the device" : "; did you mean \(near.joined(separator: ", "))?")
                             + " Nothing was copied")
        }
    }

    public static func execute(_ options: OffloadOptions, registry: DeviceRegistry, console: Console) throws -> Summary {
        let start = Date()
        try checkDevice(options.deviceID, in: registry)
        console.verbose("device ID \(options.deviceID) is registered (\(registry.source))")
        let files = try CardWalker.walk(options.source)
        let ledger = options.dryRun ? try Ledger(readOnlyPath: options.ledgerPath) : try Ledger(path: options.ledgerPath)
        let meter = ProgressMeter(console: console)
        meter.begin(files: files.count, bytes: files.reduce(0) { $0 + $1.size })
        defer { meter.end() }
        var used = Set<String>()
        var outcomes: [OffloadOutcome] = []
        var names: [String] = []
        for file in files {
            var o = OffloadOutcome(action: .failed, original: file.relative, name: "", size: file.size)
            do {
                try offload(file, options: options, ledger: ledger, used: &used, outcome: &o)
                if o.action == .copied { names.append("\(file.relative)\t\(o.name)\t\(file.size)\t\(o.sha256 ?? "")") }
            } catch {
                o.action = .failed
                o.message = "\(error)"
            }
            meter.sent(o.action == .copied || o.action == .restaged ? file.size : 0)
            meter.fileFinished(skippedBytes: o.action == .alreadySaved || o.action == .wouldCopy ? file.size : 0,
                               skipped: o.action == .alreadySaved, failed: o.action == .failed)
            report(o, console: console)
            outcomes.append(o)
        }
        if !names.isEmpty {
            for folder in [options.backupFolder, options.stagingFolder] {
                try appendNames(names, to: folder + "/names.tsv")
            }
        }
        return Summary(device: options.deviceID, registry: registry.source, backup: options.backupFolder,
                       staging: options.stagingFolder, dryRun: options.dryRun, files: outcomes,
                       seconds: Date().timeIntervalSince(start))
    }

    private static func offload(_ file: CardFile, options: OffloadOptions, ledger: Ledger, used: inout Set<String>,
                                outcome o: inout OffloadOutcome) throws {
        let saved = try ledger.copies(device: options.deviceID, remotePath: file.relative, size: file.size,
                                      mtime: Int64(file.mtime.tv_sec))
        if let backup = saved.first(where: { $0.localPath.contains("/backup/") }),
           FileWalker.fingerprint(path: backup.localPath)?.size == file.size {
            o.action = .alreadySaved
            o.name = (backup.localPath as NSString).lastPathComponent
            o.sha256 = backup.sha256
            used.insert(o.name)
            // Staged again only while it is not in S3 and its staging copy is gone.
            let staged = options.stagingFolder + "/" + o.name
            guard !options.dryRun, try ledger.verifiedObject(sha256: backup.sha256, size: file.size) == nil,
                  !FileManager.default.fileExists(atPath: staged) else { return }
            let sha = try VerifiedCopy.copy(file.path, to: [staged], mtime: file.mtime)
            guard sha == backup.sha256 else {
                unlink(staged)
                throw UsageError("\(file.relative) on the card no longer matches its backup \(backup.localPath); nothing was staged")
            }
            try ledger.recordCopy(CopyRecord(device: options.deviceID, remotePath: file.relative, size: file.size,
                                             mtime: Int64(file.mtime.tv_sec), sha256: sha, localPath: staged,
                                             remoteVerified: false, verifiedAt: Timestamp.now()))
            o.action = .restaged
            return
        }
        o.name = uniqueName(for: file, options: options, used: &used)
        if options.dryRun {
            o.action = .wouldCopy
            return
        }
        let backup = options.backupFolder + "/" + o.name
        let staged = options.stagingFolder + "/" + o.name
        let sha = try VerifiedCopy.copy(file.path, to: [backup, staged], mtime: file.mtime)
        for path in [backup, staged] {
            try ledger.recordCopy(CopyRecord(device: options.deviceID, remotePath: file.relative, size: file.size,
                                             mtime: Int64(file.mtime.tv_sec), sha256: sha, localPath: path,
                                             remoteVerified: false, verifiedAt: Timestamp.now()))
        }
        o.sha256 = sha
        o.action = .copied
    }

    /// `<epoch_ms>.<ext>` (extension case kept); `-1`, `-2`, … when that name is taken.
    static func uniqueName(for file: CardFile, options: OffloadOptions, used: inout Set<String>) -> String {
        let original = (file.relative as NSString).lastPathComponent
        let ext = (original as NSString).pathExtension
        let stem = String(file.epochMilliseconds)
        var n = 0
        while true {
            let name = stem + (n == 0 ? "" : "-\(n)") + (ext.isEmpty ? "" : ".\(ext)")
            let taken = used.contains(name)
                || FileManager.default.fileExists(atPath: options.backupFolder + "/" + name)
                || FileManager.default.fileExists(atPath: options.stagingFolder + "/" + name)
            if !taken {
                used.insert(name)
                return name
            }
            n += 1
        }
    }

    /// names.tsv beside the copies: original path, new name, size, SHA-256 (tab-separated).
    static func appendNames(_ lines: [String], to path: String) throws {
        let exists = FileManager.default.fileExists(atPath: path)
        let text = (exists ? "" : "original\tname\tsize\tsha256\n") + lines.joined(separator: "\n") + "\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileIOError.write(path: path, errno: errno) }
        defer { close(fd) }
        try Array(text.utf8).withUnsafeBytes { try FileIO.writeAll(fd, path, $0) }
        fsync(fd)
    }

    static func report(_ o: OffloadOutcome, console: Console) {
        if o.action == .failed {
            console.error("failed: \(o.original.printable): \(o.message ?? "")")
            return
        }
        guard console.showsResults else { return }
        console.result(o.action.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)
                       + ByteSize.format(o.size).padding(toLength: 11, withPad: " ", startingAt: 0)
                       + " \(o.original.printable) → \(o.name)")
    }
}
