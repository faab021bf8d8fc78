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

        var http = CurlClient.Options()
        http.connections = max(1, options.jobs)
        http.bytesPerSecond = options.bytesPerSecond
        http.stallSeconds = options.stallSeconds
        let curl = CurlClient(options: http)
        defer { curl.shutdown() }
        let s3 = S3Client(
            endpoint: settings.endpoint, region: settings.region, credentials: settings.credentials,
            http: curl, retry: retry)
        s3.log = { [console] in console.verbose($0) }

        // Prove credentials and bucket before the ledger is opened: a wrong secret writes nothing.
        try await s3.checkBucket(options.bucket)

        let ledger = options.dryRun ? try Ledger(readOnlyPath: ledgerPath) : try Ledger(path: ledgerPath)

        var (settled, planned, newFiles) = try plan(files, options: options, ledger: ledger)
        if !options.dryRun { try ledger.insertNewFiles(newFiles) }

        let meter = ProgressMeter(console: console)
        let pool = BlockingPool(threads: 2, name: "ceti-read")
        // Every key is checked against S3, by folder listing where many share one: a file the
        // ledger proves is skipped only while S3 still holds its object as recorded.
        let uploader = Uploader(
            options: options, s3: s3, ledger: ledger, console: console, meter: meter, pool: pool,
            remote: try await RemoteIndex.build(s3: s3, bucket: options.bucket, keys: planned.map(\.key)))
        var work: [PlannedFile] = []
        for (p, held) in try await confirmProofs(planned, uploader: uploader, jobs: options.jobs) {
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
        try await withThrowingTaskGroup(of: UploadOutcome.self) { group in
            var next = work.makeIterator()
            func addNext() {
                // SIGINT/SIGTERM: the uploads in hand finish (or the process gives up on them
                // after Interrupt.graceSeconds: an unfinished multipart upload resumes next run).
                guard !Interrupt.isRequested, let p = next.next() else { return }
                group.addTask { try await uploader.process(p.file, key: p.key, plannedDate: p.date) }
            }
            for _ in 0..<max(1, options.jobs) { addNext() }
            while let outcome = try await group.next() {
                finish(outcome)
                addNext()
            }
        }
        return UploadSummary(
            bucket: options.bucket, dryRun: options.dryRun,
            files: outcomes.sorted { $0.path < $1.path },
            seconds: meter.elapsed, bytesSent: meter.bytesSent)
    }

    /// Asks S3 (a few requests at a time; listed folders need none) whether each proven file's
    /// object is still there as recorded. Keeps the order of `planned`.
    static func confirmProofs(_ planned: [PlannedFile], uploader: Uploader, jobs: Int) async throws -> [(PlannedFile, Bool)] {
        var held = [Bool](repeating: false, count: planned.count)
        // Keys in a listed folder are answered at once; the others need a HEAD each.
        var asking: [Int] = []
        for (i, p) in planned.enumerated() {
            guard let object = p.proof else { continue }
            if let listed = uploader.remote.listedHead(object.key) {
                held[i] = try uploader.isHeld(object, as: listed)
            } else {
                asking.append(i)
            }
        }
        try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            var next = asking.makeIterator()
            func addNext() {
                guard let i = next.next(), let object = planned[i].proof else { return }
                group.addTask { (i, try await uploader.isStillInS3(object)) }
            }
            for _ in 0..<max(1, jobs) { addNext() }
            while let (i, ok) = try await group.next() {
                held[i] = ok
                addNext()
            }
        }
        return Array(zip(planned, held))
    }

    /// A file with its key, and the verified object the ledger holds for it (to be confirmed in S3).
    typealias PlannedFile = (file: LocalFile, key: String, date: String, proof: ObjectRecord?)

    /// Gives every file its key. {date} is the day a file was first planned, kept so a resume on a
    /// later day finds the same key. Duplicate keys are settled here; a file the ledger proves
    /// (unchanged since hashed, its object verified) carries that proof, so it needs no read,
    /// only S3's word that the object is still there.
    static func plan(_ files: [LocalFile], options: UploadOptions, ledger: Ledger) throws
        -> (settled: [UploadOutcome], work: [PlannedFile], newFiles: [FileRecord])
    {
        let today = Timestamp.utcDate()
        var settled: [UploadOutcome] = []
        var work: [PlannedFile] = []
        var newFiles: [FileRecord] = []
        var owners: [String: String] = [:]
        try ledger.reading {
            for file in files {
                let record = try ledger.file(path: file.path)
                let date = record?.plannedDate ?? today
                if record == nil {
                    newFiles.append(FileRecord(path: file.path, fingerprint: file.fingerprint, sha256: nil, plannedDate: today))
                }
                let key = options.keyTemplate.key(prefix: options.prefix, date: date, file: file)
                if let other = owners.updateValue(file.path, forKey: key) {
                    owners[key] = other
                    var outcome = UploadOutcome(
                        action: .failed, path: file.path, device: file.device, key: key,
                        size: file.fingerprint.size)
                    outcome.message = UploadError.duplicateKey(key: key, other: other).description
                    settled.append(outcome)
                    continue
                }
                let proof = try record.flatMap {
                    try ledger.proof(record: $0, fingerprint: file.fingerprint, bucket: options.bucket, key: key)
                }
                work.append((file, key, date, proof))
            }
        }
        return (settled, work, newFiles)
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
