import Foundation

/// `ceti ingest`: discover → pull → compress → upload → backup → manifest → (clean), file by file
/// and tag by tag in parallel, resumable at any point from the ledger.
public enum IngestRun {
    public static func execute(
        _ options: IngestOptions, settings: S3Settings, console: Console,
        retry: RetryPolicy = RetryPolicy()
    ) async throws -> IngestSummary {
        if let problem = options.compress.raw.problem { throw UsageError(problem) }
        var work = try options.targets.map(TagTarget.parse)
        var http = CurlClient.Options()
        http.connections = max(1, options.upload.jobs)
        http.bytesPerSecond = options.upload.bytesPerSecond
        http.stallSeconds = options.upload.stallSeconds
        let curl = CurlClient(options: http)
        defer { curl.shutdown() }
        let s3 = S3Client(
            endpoint: settings.endpoint, region: settings.region, credentials: settings.credentials,
            http: curl, retry: retry)
        s3.log = { [console] in console.verbose($0) }
        // Credentials and bucket first: a wrong secret is found before a tag is touched.
        try await s3.checkBucket(options.upload.bucket)

        let ledgerPath = FileWalker.absolute(options.pull.ledgerPath)
        let ledger = options.dryRun ? try Ledger(readOnlyPath: ledgerPath) : try Ledger(path: ledgerPath)
        var pullOptions = options.pull
        pullOptions.clean = false
        pullOptions.dryRun = options.dryRun
        let pullMeter = ProgressMeter(console: console)
        let puller = TagPuller(
            options: pullOptions, ledger: ledger, knownHosts: KnownHosts(path: options.pull.knownHostsPath),
            console: console, meter: pullMeter,
            objectCheck: ObjectCheck(s3: s3, bucket: options.upload.bucket))

        if options.targets.isEmpty {
            let found = try await TagDiscovery(puller: puller, options: pullOptions, console: console)
                .discover(options.subnets, pool: BlockingPool(threads: 16, name: "ceti-discover"))
            console.info("found \(found.count) tag(s)" + (found.isEmpty ? "" : ": " + found.map(\.summary).joined(separator: ", ")))
            // Tags that could not be read are tried again like a -t: each gets its error line and exit 1.
            work = found.map(\.target)
        }

        // The same tag given twice would be pulled twice at once into the same folder.
        var seen = Set<String>()
        work = work.filter { seen.insert("\($0.address):\($0.port ?? options.pull.port)").inserted }

        if options.dryRun {
            let pool = BlockingPool(threads: max(1, min(options.pull.jobs, work.count)), name: "ceti-tag")
            var tags: [IngestTagReport] = []
            for w in work {
                let r = try await pool.run { puller.pull(w) }
                if r.duplicateOf != nil { continue }
                WhaleTagRun.report(r, console: console)
                tags.append(IngestTagReport(tag: r.tag, address: r.address, pulled: r.files, error: r.error))
            }
            return IngestSummary(
                runId: nil, resumed: false, bucket: options.upload.bucket, dryRun: true, tags: tags,
                seconds: pullMeter.elapsed, bytesPulled: 0, bytesSent: 0)
        }

        // Two ingests on one ledger would both resume the same run.
        guard let lock = try FileLock(path: ledgerPath + ".ingest-lock") else {
            throw UsageError("another ceti ingest is running with the ledger \(ledgerPath); let it finish (or stop it) first")
        }
        defer { withExtendedLifetime(lock) {} }
        let run = try ledger.openRun()
        console.info(run.resumed ? "resuming interrupted run \(run.id)" : "run \(run.id)")
        let uploadMeter = ProgressMeter(console: console)
        let uploader = Uploader(
            options: options.upload, s3: s3, ledger: ledger, console: console, meter: uploadMeter,
            pool: BlockingPool(threads: 2, name: "ceti-read"),
            remote: try await RemoteIndex.build(s3: s3, bucket: options.upload.bucket, keys: []))
        let pipeline = IngestPipeline(
            options: options, run: run, ledger: ledger, s3: s3, puller: puller, uploader: uploader,
            console: console, tags: work.count)
        let progress = progressLine(pull: pullMeter, upload: uploadMeter, console: console)
        defer { progress?.cancel(); console.status(nil) }

        var reports: [IngestTagReport] = []
        await withTaskGroup(of: IngestTagReport.self) { group in
            for w in work {
                group.addTask { await pipeline.ingest(w) }
            }
            for await r in group where r.duplicateOf == nil { reports.append(r) }
        }
        // Refused credentials or a bucket gone: stop with S3's one line (exit 2); what was pulled
        // stays staged and recorded, and the rerun resumes this run.
        if let e = pipeline.fatal.value { throw e }
        // SIGINT/SIGTERM: the run stays open, so the rerun resumes it with the same id.
        if !Interrupt.isRequested { try ledger.finishRun(run.id) }
        return IngestSummary(
            runId: run.id, resumed: run.resumed, bucket: options.upload.bucket, dryRun: false,
            tags: reports.sorted { $0.tag < $1.tag }, seconds: pullMeter.elapsed,
            bytesPulled: reports.flatMap(\.pulled).reduce(0) { $0 + $1.bytesReceived },
            bytesSent: uploadMeter.bytesSent)
    }

    /// On a terminal, one line twice a second: what has been pulled, and what has been sent.
    private static func progressLine(pull: ProgressMeter, upload: ProgressMeter, console: Console) -> DispatchSourceTimer? {
        guard console.stderrIsTTY else { return nil }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "ceti.ingest.progress"))
        timer.schedule(deadline: .now() + 0.5, repeating: 0.5)
        timer.setEventHandler {
            let p = pull.counts
            let sent = upload.bytesSent
            let rate = Double(sent) / max(0.001, upload.elapsed)
            console.status(
                "pulled \(ByteSize.format(p.doneBytes)) / \(ByteSize.format(p.totalBytes)) (\(p.files)/\(p.totalFiles) files)  "
                    + "sent \(ByteSize.format(sent)) at \(ByteSize.format(Int64(rate)))/s")
        }
        timer.resume()
        return timer
    }
}
