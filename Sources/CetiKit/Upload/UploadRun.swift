import Foundation

/// `ceti s3upload`: walk, prove credentials and bucket, plan keys, upload, summarise.
public enum UploadRun {
    public static func execute(
        _ options: UploadOptions, settings: S3Settings, console: Console,
        retry: RetryPolicy = RetryPolicy()
    ) async throws -> UploadSummary {
        // Walk first: a wrong directory is a usage error, found before any network traffic.
        let ledgerPath = FileWalker.absolute(options.ledgerPath)
        var walker = FileWalker(excludedPaths: [ledgerPath, ledgerPath + "-wal", ledgerPath + "-shm", ledgerPath + "-journal"])
        var files: [LocalFile] = []
        for dir in options.directories {
            do { files += try walker.walk(dir) } catch let e as FileWalker.WalkError { throw UsageError(e.description) }
        }
        for s in walker.skipped { console.verbose("skipping \(s.path): \(s.reason)") }
        // A folder or file that cannot be read is a failed file, never a silent skip.
        let unreadable = walker.failures.map {
            UploadOutcome(action: .failed, path: $0.path, device: $0.device, key: "", size: 0, message: $0.description)
        }

        let service = S3Service(settings: settings, transfer: options.transfer, retry: retry, console: console)
        defer { service.shutdown() }
        let s3 = options.dryRun ? ReadOnlyStore(service.store) : service.store

        // Prove credentials and bucket before the ledger is opened: a wrong secret writes nothing.
        // Meanwhile (the same round trip on a long link) S3 is asked, once and without retries,
        // what the likely keys hold: their folders listed, the first few single keys HEADed
        // ({date}: today's, as for a file the ledger does not know yet). A hint only: what it
        // could not answer is asked again, in its place.
        async let early = RemoteIndex.ask(
            s3: service.client, bucket: options.bucket, keys: files.map { options.key(for: $0, plannedDate: nil) }, heads: options.jobs)
        try await s3.checkBucket(options.bucket)
        let known = (try? await early) ?? RemoteIndex.Known()

        let ledger = options.dryRun ? try Ledger(readOnlyPath: ledgerPath) : try Ledger(path: ledgerPath)

        var (settled, planned, newFiles) = try UploadPlanner.plan(files, options: options, ledger: ledger)
        if !options.dryRun { try ledger.insertNewFiles(newFiles) }

        let meter = ProgressMeter(console: console)
        let pool = BlockingPool(threads: 2, name: "ceti-read")
        defer { pool.shutdown() }
        // Every key is checked against S3, by folder listing where many share one: a file the
        // ledger proves is skipped only while S3 still holds its object as recorded.
        let uploader = Uploader(
            options: options, s3: s3, ledger: ledger, console: console, meter: meter, pool: pool,
            remote: try await RemoteIndex.build(s3: s3, bucket: options.bucket, keys: planned.map(\.key), known: known))
        var work: [UploadPlanner.PlannedFile] = []
        for (p, held) in try await UploadPlanner.confirmProofs(planned, uploader: uploader, jobs: options.jobs) {
            if held, let object = p.proof {
                settled.append(.skipped(p.file.path, device: p.file.device, proof: object, size: p.file.fingerprint.size))
            } else {
                work.append(p)
            }
        }
        meter.begin(files: files.count, bytes: files.reduce(0) { $0 + $1.fingerprint.size })
        defer { meter.end() }
        var outcomes: [UploadOutcome] = []
        func finish(_ o: UploadOutcome) {
            outcomes.append(o)
            let skipped = o.action == .skipped || o.action == .present
            meter.fileFinished(skippedBytes: skipped ? o.size : 0, skipped: skipped, failed: o.isFailure)
            report(o, options: options, console: console)
        }
        (unreadable + settled).forEach(finish)
        let window = TransferWindow(jobs: options.jobs, partSize: options.partSize)
        try await withThrowingTaskGroup(of: UploadOutcome?.self) { group in
            for p in work {
                group.addTask {
                    try await window.run(size: p.file.fingerprint.size, rank: TransferWindow.rank(p.file.path)) {
                        // SIGINT/SIGTERM: the uploads in hand finish (or the process gives up on
                        // them after Interrupt.graceSeconds: a multipart upload resumes next run).
                        guard !Interrupt.isRequested else { return nil }
                        return try await uploader.process(p.file, key: p.key, plannedDate: p.date)
                    }
                }
            }
            while let outcome = try await group.next() {
                if let outcome { finish(outcome) }
            }
        }
        try sayIngestQueue(outcomes, ledger: ledger, console: console)
        return UploadSummary(
            bucket: options.bucket, dryRun: options.dryRun,
            files: outcomes.sorted { $0.path < $1.path },
            seconds: meter.elapsed, bytesSent: meter.bytesSent)
    }

    /// Files `ceti ingest` left waiting for S3 (its queue) go up like any other; their manifests are
    /// ingest's to write, and it needs no tag for that. Says so, once.
    static func sayIngestQueue(_ outcomes: [UploadOutcome], ledger: Ledger, console: Console) throws {
        let held: Set<UploadOutcome.Action> = [.uploaded, .resumed, .skipped, .present, .overwritten]
        let inS3 = Set(outcomes.filter { held.contains($0.action) }.map(\.path))
        let queued = try ledger.queuedFiles().values.joined().filter {
            inS3.contains($0.copy.localPath) || $0.derivatives.keys.contains(where: inS3.contains)
        }
        guard let first = queued.first else { return }
        let staging = ((first.copy.localPath as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        let devices = Set(queued.map(\.copy.device)).sorted().joined(separator: ", ")
        console.info(
            "\(queued.count) of these file(s) (\(devices)) were waiting in `ceti ingest`'s queue: they are in S3 now. "
                + "`ceti ingest --staging \(staging.printable)` (no tag needed) writes their manifests and _COMPLETE, "
                + "sending none of them again")
    }

    /// One line per file when not on a terminal; on a terminal only what is not a plain skip.
    static func report(_ o: UploadOutcome, options: UploadOptions, console: Console) {
        if o.isFailure {
            console.error("\(o.action.rawValue): \(o.path): \(o.message ?? "")")
            return
        }
        guard console.showsResults else { return }
        let line =
            o.action.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0)
            + ByteSize.format(o.size).padding(toLength: 11, withPad: " ", startingAt: 0)
            + " \(o.path.printable) -> s3://\(options.bucket)/\(o.key.printable)"
        if console.stderrIsTTY && (o.action == .skipped || o.action == .present) {
            console.verbose(line)
        } else {
            console.result(line)
        }
    }
}
