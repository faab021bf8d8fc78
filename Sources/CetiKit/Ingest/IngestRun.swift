import Foundation

/// `ceti ingest`: discover → pull → compress → upload → backup → manifest → (clean), file by file
/// and tag by tag in parallel, resumable at any point from the ledger.
public enum IngestRun {
    public static func execute(
        _ options: IngestOptions, settings: S3Settings, console: Console,
        retry: RetryPolicy = RetryPolicy(networkAttempts: 3)
    ) async throws -> IngestSummary {
        if let problem = options.compress.raw.problem { throw UsageError(problem) }
        let service = S3Service(settings: settings, transfer: options.upload.transfer, retry: retry, console: console)
        defer { service.shutdown() }
        var pullOptions = options.pull
        pullOptions.dryRun = options.dryRun
        let ssh = SSHTagConnector(options: pullOptions, knownHosts: KnownHosts(path: options.pull.knownHostsPath), console: console)
        let store = options.dryRun ? ReadOnlyStore(service.store) : service.store
        var context = Context(store: store, tags: ssh, discovery: ssh)
        context.probe = service.client
        return try await execute(options, context: context, console: console)
    }

    /// What a run talks to. Real runs: S3 through libcurl and tags over SSH; tests hand in memory
    /// doubles and run the very same composition in-process.
    public struct Context: Sendable {
        public var store: any ObjectStore
        public var tags: any TagConnector
        /// Finds tags on the LAN when no target is given (SSH only).
        var discovery: SSHTagConnector?
        public var clock: any WallClock = SystemClock()
        /// An open ledger to keep the records in, instead of the one at the options' path.
        public var ledger: Ledger?
        /// Asked (once per ask, no retries) whether S3 answers; the store itself when nil.
        public var probe: (any ObjectStore)?

        public init(store: any ObjectStore, tags: any TagConnector, clock: any WallClock = SystemClock(), ledger: Ledger? = nil) {
            self.store = store
            self.tags = tags
            self.clock = clock
            self.ledger = ledger
        }

        init(store: any ObjectStore, tags: any TagConnector, discovery: SSHTagConnector) {
            self.init(store: store, tags: tags)
            self.discovery = discovery
        }
    }

    public static func execute(_ options: IngestOptions, context: Context, console: Console) async throws -> IngestSummary {
        var work = try options.targets.map(TagTarget.parse)
        let s3 = context.store
        // Credentials and bucket first, when S3 answers: a wrong secret is found before a tag is
        // touched. When it does not answer, the tags are offloaded all the same and the uploads
        // wait for it (offline first: the uplink of a boat is down for hours).
        let uplink = Uplink(
            probe: context.probe ?? s3, bucket: options.upload.bucket, clock: context.clock, console: console,
            firstDelay: options.s3RetryDelay)
        defer { uplink.stop() }
        try await uplink.check()

        let ledgerPath = FileWalker.absolute(options.pull.ledgerPath)
        let ledger = try context.ledger ?? (options.dryRun ? Ledger(readOnlyPath: ledgerPath) : Ledger(path: ledgerPath))
        var pullOptions = options.pull
        pullOptions.clean = false
        pullOptions.dryRun = options.dryRun
        let pullMeter = ProgressMeter(console: console)
        let puller = TagPuller(
            options: pullOptions, ledger: ledger, connector: context.tags, console: console, meter: pullMeter, clock: context.clock)
        // One pool for every blocking step of the run (discovery probes, tag sessions, encoders,
        // hashing, backup copies); each kind of work is bounded by its own limit.
        let pool = BlockingPool(threads: max(16, IngestPipeline.threads(options, tags: max(1, work.count)) + 2), name: "ceti-work")
        defer { pool.shutdown() }

        // No tag given and none to discover (a context without SSH): only the queue is drained.
        if options.targets.isEmpty, let ssh = context.discovery {
            let found = try await TagDiscovery(connector: ssh, ledger: ledger, options: pullOptions, console: console)
                .discover(options.subnets, pool: pool)
            console.info("found \(found.count) tag(s)" + (found.isEmpty ? "" : ": " + found.map(\.summary).joined(separator: ", ")))
            // Tags that could not be read are tried again like a -t: each gets its error line and exit 1.
            work = found.map(\.target)
        }

        // The same tag given twice would be pulled twice at once into the same folder.
        var seen = Set<String>()
        work = work.filter { seen.insert("\($0.address):\($0.port ?? options.pull.port)").inserted }

        if options.dryRun {
            var tags: [IngestTagReport] = []
            for w in work {
                let r = try await pool.run { puller.session(w) { tag, report in report.files = try puller.preview(tag) } }
                if r.duplicateOf != nil { continue }
                PullReporter.report(r, console: console)
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
        let run = try ledger.openRun(now: context.clock.now())
        console.info(run.resumed ? "resuming interrupted run \(run.id)" : "run \(run.id)")
        let uploadMeter = ProgressMeter(console: console)
        let uploader = Uploader(
            options: options.upload, s3: s3, ledger: ledger, console: console, meter: uploadMeter, pool: pool,
            remote: try await RemoteIndex.build(s3: s3, bucket: options.upload.bucket, keys: []), throwsUnreachable: true)
        let cleaner = TagCleaner(
            ledger: ledger, require: options.pull.require, dryRun: false, s3: ObjectCheck(s3: s3, bucket: options.upload.bucket))
        // What earlier runs pulled into this staging folder and left waiting for S3 (the queue).
        let staging = FileWalker.absolute(options.pull.dataDir) + "/"
        let pending = try ledger.queuedFiles().mapValues {
            $0.filter { $0.copy.localPath.hasPrefix(staging) && IngestPipeline.isHeld($0) }.map(\.copy)
        }.filter { !$0.value.isEmpty }
        let pipeline = IngestPipeline(
            options: options, run: run, ledger: ledger, store: s3, puller: puller, uploader: uploader, cleaner: cleaner,
            uplink: uplink, pending: pending, tags: work.count, console: console, pool: pool, clock: context.clock)
        let progress = progressLine(
            pull: pullMeter, upload: uploadMeter, compressed: pipeline.compressed, uplink: uplink, console: console)
        defer { progress?.cancel(); console.status(nil) }

        var reports: [IngestTagReport] = []
        if work.isEmpty { pipeline.pullsFinished() }
        await withTaskGroup(of: [IngestTagReport].self) { group in
            for w in work {
                group.addTask { [await pipeline.ingest(w)] }
            }
            // Once every tag is pulled: the devices no tag of this run took, from the queue.
            group.addTask {
                for await _ in pipeline.pullsDone {}
                var drained: [IngestTagReport] = []
                for device in pipeline.pendingDevices where !Interrupt.isRequested {
                    drained.append(await pipeline.drain(device: device))
                }
                return drained
            }
            for await rs in group { reports += rs.filter { $0.duplicateOf == nil } }
        }
        // Refused credentials or a bucket gone: stop with S3's one line (exit 2); what was pulled
        // stays staged and recorded, and the rerun resumes this run.
        if let e = pipeline.fatal.value ?? uplink.fatal { throw e }
        // SIGINT/SIGTERM: the run stays open, so the rerun resumes it with the same id.
        if !Interrupt.isRequested { try ledger.finishRun(run.id) }
        return IngestSummary(
            runId: run.id, resumed: run.resumed, bucket: options.upload.bucket, dryRun: false,
            tags: reports.sorted { $0.tag < $1.tag }, seconds: pullMeter.elapsed,
            bytesPulled: reports.flatMap(\.pulled).reduce(0) { $0 + $1.bytesReceived },
            bytesSent: uploadMeter.bytesSent, qcStrict: options.qcStrict)
    }

    /// On a terminal, one line twice a second: what has been pulled, and what has been sent.
    private static func progressLine(
        pull: ProgressMeter, upload: ProgressMeter, compressed: Locked<Int64>, uplink: Uplink, console: Console
    ) -> DispatchSourceTimer? {
        guard console.stderrIsTTY else { return nil }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "ceti.ingest.progress"))
        timer.schedule(deadline: .now() + 0.5, repeating: 0.5)
        timer.setEventHandler {
            let p = pull.counts
            let sent = upload.bytesSent
            let rate = Double(sent) / max(0.001, upload.elapsed)
            // While S3 cannot be reached the line says what the uploads wait for, not a rate.
            console.status(
                "pulled \(ByteSize.format(p.doneBytes)) / \(ByteSize.format(p.totalBytes)) (\(p.files)/\(p.totalFiles) files)  "
                    + "compressed \(ByteSize.format(compressed.value))  "
                    + (uplink.waitDescription ?? "sent \(ByteSize.format(sent)) at \(ByteSize.format(Int64(rate)))/s"))
        }
        timer.resume()
        return timer
    }
}
