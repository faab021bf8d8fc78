import Foundation

/// `ceti general_offload`: check the device ID, then copy every file of the card to the dated
/// backup and to staging, verified, under names from the files' birth times.
public enum OffloadRun {
    public struct Summary: Sendable, Codable {
        public var device: String
        public var registry: String
        /// The backup folder, when this run wrote verified copies into it (nil otherwise).
        public var backup: String?
        /// The staging folder, when this run wrote verified copies into it (nil otherwise).
        public var staging: String?
        public var dryRun: Bool
        public var files: [OffloadOutcome]
        public var seconds: Double

        public var exitCode: Int32 { files.contains { $0.action == .failed } ? 1 : 0 }

        public var line: String {
            func n(_ a: OffloadOutcome.Action) -> Int { files.filter { $0.action == a }.count }
            let bytes = files.filter { $0.action == .copied || $0.action == .restaged }.reduce(0) { $0 + $1.size }
            return "\(device): " + (dryRun ? "\(n(.wouldCopy)) to copy, " : "\(n(.copied)) copied, \(n(.restaged)) staged again, ")
                + "\(n(.alreadySaved)) already saved, \(n(.failed)) failed; \(ByteSize.format(bytes)) in "
                + String(format: "%.1f s", seconds) + (dryRun ? "" : destinations)
        }

        /// Only folders this run wrote into, each holding what it says (and its names.tsv).
        var destinations: String {
            let written = [backup, staging].compactMap { $0 }
            return written.isEmpty ? "" : " → " + written.joined(separator: " and ")
        }
    }

    public static func checkDevice(_ id: String, in registry: DeviceRegistry) throws {
        guard registry.ids.contains(id) else {
            let near = registry.suggestions(for: id)
            throw UsageError(
                "device ID '\(id)' is not registered (list: \(registry.source))"
                    + (near.isEmpty ? "; check the label on the device" : "; did you mean \(near.joined(separator: ", "))?")
                    + " Nothing was copied")
        }
    }

    public static func execute(_ options: OffloadOptions, registry: DeviceRegistry, console: Console) throws -> Summary {
        let start = Date()
        try checkDevice(options.deviceID, in: registry)
        console.verbose("device ID \(options.deviceID) is registered (\(registry.source))")
        let (files, unreadable) = try CardWalker.walk(options.source)
        let ledger = options.dryRun ? try Ledger(readOnlyPath: options.ledgerPath) : try Ledger(path: options.ledgerPath)
        let meter = ProgressMeter(console: console)
        meter.begin(files: files.count, bytes: files.reduce(0) { $0 + $1.size })
        defer { meter.end() }
        var used = Set<String>()
        var outcomes: [OffloadOutcome] = []
        // Never a silent skip: what could not be read is a failed file (the rest is still copied).
        for f in unreadable {
            let o = OffloadOutcome(
                action: .failed, original: f.relative.isEmpty ? f.path : f.relative, name: "", size: 0,
                message: f.description)
            report(o, console: console)
            outcomes.append(o)
        }
        // names.tsv lines for the backup (new copies) and for staging (new copies and restaged ones).
        var names: [String] = []
        var stagedNames: [String] = []
        // SIGINT/SIGTERM: no new file after the one in hand; names.tsv still lists what was copied.
        for file in files where !Interrupt.isRequested {
            var o = OffloadOutcome(action: .failed, original: file.relative, name: "", size: file.size)
            do {
                try offload(file, options: options, ledger: ledger, used: &used, outcome: &o)
                let line = "\(file.relative)\t\(o.name)\t\(file.size)\t\(o.sha256 ?? "")"
                if o.action == .copied { names.append(line) }
                if o.action == .copied || o.action == .restaged { stagedNames.append(line) }
            } catch {
                o.action = .failed
                o.message = "\(error)"
            }
            meter.sent(o.action == .copied || o.action == .restaged ? file.size : 0)
            meter.fileFinished(
                skippedBytes: o.action == .alreadySaved || o.action == .wouldCopy ? file.size : 0,
                skipped: o.action == .alreadySaved, failed: o.action == .failed)
            report(o, console: console)
            outcomes.append(o)
        }
        if !names.isEmpty { try appendNames(names, to: options.backupFolder + "/names.tsv") }
        if !stagedNames.isEmpty { try appendNames(stagedNames, to: options.stagingFolder + "/names.tsv") }
        return Summary(
            device: options.deviceID, registry: registry.source,
            backup: names.isEmpty ? nil : options.backupFolder,
            staging: stagedNames.isEmpty ? nil : options.stagingFolder, dryRun: options.dryRun, files: outcomes,
            seconds: Date().timeIntervalSince(start))
    }

    private static func offload(
        _ file: CardFile, options: OffloadOptions, ledger: Ledger, used: inout Set<String>,
        outcome o: inout OffloadOutcome
    ) throws {
        let saved = try ledger.copies(
            device: options.deviceID, remotePath: file.relative, size: file.size,
            mtime: Int64(file.mtime.tv_sec))
        // Saved means a backup under *this* backup root (any date) that still holds the bytes
        // recorded: a backup on another disk is not the one this command was asked for.
        let intact = saved.first {
            $0.localPath.hasPrefix(options.backupRoot + "/") && FileWalker.fingerprint(path: $0.localPath)?.size == file.size
                && (try? FileHashes.sha256(path: $0.localPath)) == $0.sha256
        }
        if let backup = intact {
            o.action = .alreadySaved
            o.name = (backup.localPath as NSString).lastPathComponent
            o.sha256 = backup.sha256
            used.insert(o.name)
            // Staged again only while no object of this card file's own copies is in S3 and its
            // staging copy is gone (another device's identical bytes prove nothing).
            let staged = options.stagingFolder + "/" + o.name
            guard !options.dryRun, try ledger.objectsProving(backup, bucket: nil).isEmpty,
                !FileManager.default.fileExists(atPath: staged)
            else { return }
            let sha = try VerifiedCopy.copy(file.path, to: [staged], mtime: file.mtime)
            guard sha == backup.sha256 else {
                unlink(staged)
                throw UsageError("\(file.relative) on the card no longer matches its backup \(backup.localPath); nothing was staged")
            }
            try ledger.recordCopy(
                CopyRecord(
                    device: options.deviceID, remotePath: file.relative, size: file.size,
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
            try ledger.recordCopy(
                CopyRecord(
                    device: options.deviceID, remotePath: file.relative, size: file.size,
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
            let taken =
                used.contains(name)
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
        console.result(
            o.action.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)
                + ByteSize.format(o.size).padding(toLength: 11, withPad: " ", startingAt: 0)
                + " \(o.original.printable) → \(o.name)")
    }
}
