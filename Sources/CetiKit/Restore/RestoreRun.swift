import Foundation

/// `ceti restore`: a run's files for one device back from S3 as the device wrote them, from the
/// manifest alone (no ledger is read or made). Resumable: a rerun counts the files already in the
/// folder (by size and SHA-256) and continues partial downloads.
public enum RestoreRun {
    /// Reads the manifest, connects to S3 with `flags` (the objects' bucket: --bucket, else the
    /// one the manifest was read from, else the manifest's own) and restores.
    public static func execute(
        _ options: RestoreOptions, flags: S3Settings.Flags, environment: [String: String], config: ConfigFile,
        console: Console, retry: RetryPolicy = RetryPolicy()
    ) async throws -> RestoreSummary {
        var service: S3Service?
        defer { service?.shutdown() }
        func connect(_ bucket: String) throws -> S3Service {
            var flags = flags
            flags.bucket = bucket
            var transfer = CurlClient.Options()
            transfer.connections = RestoreRun.downloads(jobs: options.jobs) * ObjectDownload.window
            return S3Service(
                settings: try S3Settings.resolve(flags, environment: environment, config: config), transfer: transfer, retry: retry,
                console: console)
        }
        if let bucket = options.bucket ?? options.source.bucket { service = try connect(bucket) }
        let (manifest, complete) = try await options.source.load(store: service?.store)
        let bucket = options.bucket ?? options.source.bucket ?? manifest.bucket
        if service == nil { service = try connect(bucket) }
        var summary = try await restore(manifest, bucket: bucket, options: options, store: service!.store, console: console)
        summary.complete = complete
        if complete == false {
            summary.notes.append("no \(Manifest.completeMarker) beside the manifest: the run that wrote it stopped before its last step")
            console.info("note: \(summary.notes.last!)")
        }
        return summary
    }

    /// Restores the manifest's files (those --only selects) from `bucket` into the folder.
    public static func restore(
        _ manifest: Manifest, bucket: String, options: RestoreOptions, store: any ObjectStore, console: Console
    ) async throws -> RestoreSummary {
        let directory = FileWalker.absolute(options.directory)
        var summary = RestoreSummary(
            source: options.source.description, run: manifest.runId, device: manifest.device, bucket: bucket, directory: directory)
        let (entries, refused) = plan(manifest.files, only: options.only, keepDerivatives: options.keepDerivatives)
        summary.files = entries.count + refused.count
        for p in refused { found(p, in: &summary, console) }
        guard !entries.isEmpty else {
            if summary.files == 0 { throw UsageError("--only \(options.only.joined(separator: " ")): no file of the manifest matches") }
            return summary
        }
        let pool = BlockingPool(threads: options.jobs, name: "ceti-restore")
        defer { pool.shutdown() }
        if options.dryRun {
            summary.dryRun = true
            let restorer = Restorer(
                download: ObjectDownload(store: store, pool: pool), downloads: AsyncLimiter(1), pool: pool, bucket: bucket,
                directory: directory, keepDerivatives: false)
            for entry in entries {
                do {
                    if try await restorer.isThere(entry) {
                        summary.alreadyThere += 1
                        summary.bytes += entry.size
                    } else {
                        summary.wouldRestore += 1
                        summary.wouldDownload += entry.object.size
                        console.info(
                            "would restore \(entry.name.printable) (\(ByteSize.format(entry.size)), object \(ByteSize.format(entry.object.size)))"
                        )
                    }
                } catch {
                    found(.init(name: entry.name, detail: "\(error)"), in: &summary, console)
                }
            }
            return summary
        }
        guard mkdir(fsPath(directory), 0o755) == 0 || errno == EEXIST else { throw FileIOError.write(path: directory, errno: errno) }
        // Two restores into one folder would write each other's temporary files.
        guard let lock = try FileLock(directory: directory) else {
            throw UsageError("\(directory.printable) is being restored into by another ceti restore; rerun when it has finished")
        }
        defer { withExtendedLifetime(lock) {} }

        let meter = ProgressMeter(console: console)
        meter.begin(files: entries.count, bytes: entries.reduce(0) { $0 + $1.object.size })
        defer { meter.end() }
        let restorer = Restorer(
            download: ObjectDownload(store: store, pool: pool, received: { meter.sent($0) }),
            downloads: AsyncLimiter(downloads(jobs: options.jobs)), pool: pool, bucket: bucket, directory: directory,
            keepDerivatives: options.keepDerivatives)
        var notes = Set<String>()
        for e in entries where e.derivative?.codec == "flac" && !e.name.lowercased().hasSuffix(".wav") {
            if let note = Restorer.layout(e.derivative!).note, notes.insert(note).inserted {
                summary.notes.append(note)
                console.info("note: \(note)")
            }
        }
        try await withThrowingTaskGroup(of: (Manifest.Entry, Result<Restorer.Outcome, Error>).self) { group in
            // Largest first: what is decoded after the last byte has landed is then a small file.
            var next = entries.sorted { ($0.object.size, $1.name) > ($1.object.size, $0.name) }.makeIterator()
            func addNext() {
                guard !Interrupt.isRequested, let entry = next.next() else { return }
                group.addTask {
                    do { return (entry, .success(try await restorer.restore(entry))) } catch { return (entry, .failure(error)) }
                }
            }
            for _ in 0..<max(1, options.jobs) { addNext() }
            while let (entry, result) = try await group.next() {
                switch result {
                case .success(.restored(let fetched)):
                    summary.restored += 1
                    summary.downloaded += fetched
                    summary.bytes += entry.size
                    meter.fileFinished()
                    console.verbose("restored \(entry.name.printable) (\(ByteSize.format(entry.size)))")
                case .success(.alreadyThere):
                    summary.alreadyThere += 1
                    summary.bytes += entry.size
                    meter.fileFinished(skippedBytes: entry.object.size, skipped: true)
                    console.verbose("already there: \(entry.name.printable)")
                case .failure(let error):
                    if error is Interrupted { throw error }
                    if let e = error as? S3Error, e.isFatal { throw e }
                    meter.fileFinished(failed: true)
                    found(.init(name: entry.name, detail: "\(error)"), in: &summary, console)
                }
                addNext()
            }
        }
        try Interrupt.check()
        summary.problems.sort { $0.name < $1.name }
        return summary
    }

    /// Downloads at once: two, so that one file's last chunks overlap the next one's first.
    static func downloads(jobs: Int) -> Int { min(2, jobs) }

    /// The entries to restore (--only), and those refused: a name that is not one plain file name
    /// (a manifest from elsewhere must not write outside the folder), or one that two entries share.
    static func plan(_ files: [Manifest.Entry], only: [String], keepDerivatives: Bool) -> ([Manifest.Entry], [RestoreSummary.Problem]) {
        let selected = only.isEmpty ? files : files.filter { e in only.contains { fnmatch($0, e.name, 0) == 0 } }
        var seen: [String: Int] = [:]
        for e in selected {
            seen[e.name, default: 0] += 1
            if keepDerivatives, let d = e.derivative { seen[d.name, default: 0] += 1 }
        }
        var ok: [Manifest.Entry] = []
        var refused: [RestoreSummary.Problem] = []
        for e in selected {
            let names = [e.name] + (keepDerivatives ? [e.derivative?.name].compactMap { $0 } : [])
            if let bad = names.first(where: { !isPlainName($0) }) {
                refused.append(.init(name: e.name, detail: "\(bad.printable) is not a path inside the folder: not restored"))
            } else if let twice = names.first(where: { seen[$0, default: 0] > 1 }) {
                refused.append(.init(name: e.name, detail: "the manifest lists \(twice.printable) more than once: not restored"))
            } else {
                ok.append(e)
            }
        }
        return (ok, refused)
    }

    /// A path inside the folder: a file name, or folders and a file name (a watched session's
    /// `sensors/gps.csv`) — never absolute, never `.` or `..` or an empty part, no NUL, and not one
    /// of restore's own temporary files.
    static func isPlainName(_ name: String) -> Bool {
        let bytes = NameCodec.decode(name)
        let parts = bytes.split(separator: 0x2F, omittingEmptySubsequences: false)
        return !bytes.contains(0) && !name.hasPrefix(".ceti-restore-")
            && parts.allSatisfy { !$0.isEmpty && Array($0) != Array(".".utf8) && Array($0) != Array("..".utf8) }
    }

    private static func found(_ p: RestoreSummary.Problem, in summary: inout RestoreSummary, _ console: Console) {
        summary.problems.append(p)
        console.error("\(p.name.printable): \(p.detail)")
    }
}
