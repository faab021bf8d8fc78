import Foundation

/// `ceti ingest`, one tag at a time, composed of the capabilities' steps: the tag's pull runs on a
/// pool thread and hands over each verified copy at once; every copy is then compressed
/// (`Compressor.produce`), uploaded (`Uploader.save`, with the hashes compress made), backed up and
/// listed for the manifest (`ManifestWriter`) while the next one is still arriving. When every
/// file of the tag is verified in S3, the manifest and `_COMPLETE` are written, and only then (with
/// --clean) is the tag wiped of what is proven (`TagCleaner`, which asks S3 before each delete).
/// What is skipped is decided before the pull, from one ledger query (`TagPuller.plan`). While S3
/// cannot be reached, uploads wait on the `Uplink` and everything local goes on (offline first).
final class IngestPipeline: Sendable {
    let options: IngestOptions
    let run: IngestRunRecord
    let ledger: Ledger
    let puller: TagPuller
    let compressor: Compressor
    let uploader: Uploader
    let cleaner: TagCleaner
    let manifests: ManifestWriter
    let console: Console
    let pool: BlockingPool
    let tagSlots: AsyncLimiter
    let compressSlots: AsyncLimiter
    let uploads: TransferWindow
    /// Sends large as-is files while they are pulled; nil on a dry run or without the tag's
    /// checksums (the upload's metadata needs the tag's SHA-256 before the last byte).
    let streamer: PartStreamer?
    /// The streaming of each file being pulled, by its final local path: its upload step waits
    /// for it, so that one sender at a time owns the multipart upload, and takes the parts'
    /// hashes from it when every part went.
    private let streams = Locked<[String: Task<FileHashes?, Never>]>([:])
    /// Recording QC of the firmware FLACs measured as they were pulled, by local path, until their
    /// file step takes it (also in the ledger, for a rerun).
    private let pulledQC = Locked<[String: FileQC]>([:])
    let budget: StagingBudget
    let uplink: Uplink
    /// Input bytes compressed in this run, as they go (the progress line).
    let compressed: Locked<Int64>
    /// The queue earlier runs left waiting for S3, by device (still staged).
    private let pending: Locked<[String: [CopyRecord]]>
    /// Tags whose pull has not ended yet: when none is left, the run's patience with S3 starts
    /// and the devices no tag took are drained.
    private let pullsLeft: Locked<Int>
    let pullsDone: AsyncStream<Void>
    private let pullsDoneContinuation: AsyncStream<Void>.Continuation
    /// The first fatal S3 error (refused credentials, missing bucket): the run stops starting new
    /// work and ends with it.
    let fatal = Locked<S3Error?>(nil)

    init(
        options: IngestOptions, run: IngestRunRecord, ledger: Ledger, store: any ObjectStore, puller: TagPuller,
        uploader: Uploader, cleaner: TagCleaner, uplink: Uplink, pending: [String: [CopyRecord]], tags: Int,
        console: Console, pool: BlockingPool, clock: any WallClock = SystemClock()
    ) {
        self.uplink = uplink
        self.pending = Locked(pending)
        pullsLeft = Locked(tags)
        (pullsDone, pullsDoneContinuation) = AsyncStream.makeStream(of: Void.self)
        self.options = options
        self.run = run
        self.ledger = ledger
        self.puller = puller
        self.uploader = uploader
        self.cleaner = cleaner
        self.console = console
        self.pool = pool
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let encoded = Locked<Int64>(0)
        compressed = encoded
        compressor = Compressor(
            options: options.compress, ledger: ledger, gzipThreads: max(1, cores), partSize: options.upload.partSize, clock: clock,
            progress: { n in encoded.update { $0 += n } })
        manifests = ManifestWriter(
            ledger: ledger, store: store, bucket: options.upload.bucket, prefix: options.upload.prefix, console: console,
            judge: QCJudge(thresholds: options.compress.qc ?? .init()))
        tagSlots = AsyncLimiter(max(1, options.pull.jobs))
        compressSlots = AsyncLimiter(max(1, options.compress.jobs))
        uploads = TransferWindow(jobs: options.upload.jobs, partSize: options.upload.partSize)
        streamer =
            options.dryRun || !options.pull.remoteVerify
            ? nil
            : PartStreamer(
                options: options.upload, store: store, ledger: ledger, window: uploads, uplink: uplink, pool: pool, console: console,
                meter: uploader.meter)
        budget = StagingBudget(limit: options.maxStaging)
    }

    /// Threads the pipeline keeps busy at most: tags, encoders, one backup copy.
    static func threads(_ options: IngestOptions, tags: Int) -> Int {
        max(1, min(options.pull.jobs, tags)) + max(1, options.compress.jobs) + 1
    }

    private var bucket: String { options.upload.bucket }

    func ingest(_ target: TagTarget) async -> IngestTagReport {
        var report = IngestTagReport(tag: target.name ?? target.address, address: target.address)
        let (stream, continuation) = AsyncStream.makeStream(of: (copy: CopyRecord, reserved: Bool).self)
        // The device folder stays locked until its files are processed, after the tag's session.
        let folderLock = Locked<FileLock?>(nil)
        defer { folderLock.value = nil }
        let pull = Task { [self] in
            // The pull has ended (its files may still be on their way to S3).
            defer {
                if pullsLeft.update({ n in
                    n -= 1; return n
                }) == 0 {
                    pullsFinished()
                }
            }
            return try await tagSlots.run {
                try await pool.run { [self] in
                    defer { continuation.finish() }
                    return puller.session(target) { tag, pulled in
                        folderLock.value = try puller.lockFolder(device: tag.name)
                        try feed(from: tag, target: target, into: continuation, report: &pulled)
                    }
                }
            }
        }
        var outcomes: [IngestFileOutcome] = []
        await withTaskGroup(of: IngestFileOutcome.self) { group in
            for await item in stream {
                // SIGINT/SIGTERM: the files in hand finish; a copy handed over now waits in
                // staging (recorded) for the rerun.
                if Interrupt.isRequested {
                    if item.reserved { budget.release(item.copy.size) }
                    continue
                }
                group.addTask { await self.process(item.copy, host: target.address, reserved: item.reserved) }
            }
            for await o in group { outcomes.append(o) }
        }
        // The pool's body never throws: the pull reports its own failures.
        let pulled = (try? await pull.value) ?? TagPullReport(tag: report.tag, address: target.address, error: "the pull was interrupted")
        // Streams of files that never reached their upload step (disowned, failed, interrupted).
        let folder = puller.localDirectory(device: pulled.tag) + "/"
        for left in streams.update({ s in s.filter { $0.key.hasPrefix(folder) }.map { s.removeValue(forKey: $0.key)! } }) {
            _ = await left.value
        }
        report.tag = pulled.tag
        report.duplicateOf = pulled.duplicateOf
        report.pulled = pulled.files
        report.error = pulled.error
        report.files = outcomes.sorted { $0.name < $1.name }
        // A fatal S3 error ends the run with one line of its own; the rest waits for the rerun.
        guard fatal.value == nil else { return report }
        // Interrupted: no manifest and no cleaning now; the rerun resumes this run. A
        // capture-restart problem is still said.
        if Interrupt.isRequested {
            if let error = pulled.error { console.error("\(report.tag): \(error)") }
            return report
        }
        if let first = pulled.duplicateOf {
            console.info("\(target.description): the same tag as \(first) (\(report.tag), same host key); pulled once")
            return report
        }
        PullReporter.report(pulled, console: console, results: false)
        // The tag's verdict, before anything on it is deleted: the operator decides whether it
        // goes back into the sea as it is (the verdict never changes what is deleted).
        let measured = outcomes.compactMap(\.qc)
        if !measured.isEmpty {
            report.qc = manifests.judge.device(report.tag, files: measured, listFiles: false)
            QCJudge.say(report.qc!, console: console)
        }

        await closing(&report) { report in
            report.manifest = try await completeIfDone(device: report.tag, host: target.address, files: report.files, failed: report.failed)
            // A file that failed never holds back the others: each file is deleted only on its own
            // proof (TagCleaner asks S3 just before each delete). A tag that could not be reached,
            // or whose manifest could not be written, is left alone.
            guard fatal.value == nil, options.clean, report.error == nil else { return }
            if options.pull.require == .uploaded, !uplink.isOnline {
                console.info(
                    "\(report.tag): S3 cannot be reached, so nothing was deleted on the tag (each delete needs S3's word); "
                        + "clean it with a rerun once the uplink is back")
                return
            }
            // Over a session of its own: the pull's may have idled out during hours of uploading.
            let named = TagTarget(address: target.address, port: target.port, name: report.tag)
            report.cleaned = try await pool.run { [puller, cleaner] in
                let tag = try puller.connector.connect(named, expectedName: named.name)
                return try cleaner.clean(tag: tag, remoteDir: puller.remoteDirectory)
            }
            PullReporter.reportCleaned(report.cleaned, tag: report.tag, console: console)
        }
        return report
    }

    /// A tag's (or a drained device's) closing steps: a fatal S3 error ends the run, any other
    /// error is the tag's own, said once.
    private func closing(_ report: inout IngestTagReport, _ body: (inout IngestTagReport) async throws -> Void) async {
        do {
            try await body(&report)
        } catch let e as S3Error where e.isFatal {
            noteFatal(e)
        } catch {
            report.error = "\(error)"
            console.error("\(report.tag): \(error)")
        }
    }

    /// The run's first fatal S3 error: no new work starts after it.
    private func noteFatal(_ e: S3Error) { fatal.update { $0 = $0 ?? e } }

    /// The device's manifest once every file of it in this run is in S3 (nil otherwise, said why).
    private func completeIfDone(device: String, host: String, files: [IngestFileOutcome], failed: Bool) async throws -> String? {
        let queued = files.filter { $0.action == .queued }.count
        if failed {
            if (try? ledger.runDevice(run: run.id, device: device)) != nil {
                console.error("\(device): no manifest in this run because of the failures above; rerun to finish it")
            }
            return nil
        }
        guard queued == 0 else {
            console.info("\(device): \(queued) file(s) wait for S3; its manifest is written once they are uploaded")
            return nil
        }
        return try await manifests.complete(run: run, device: device, host: host)
    }

    /// Every tag's pull has ended: from now on the run waits for S3 at most its patience.
    func pullsFinished() {
        uplink.startPatience(options.s3Patience)
        pullsDoneContinuation.finish()
    }

    // MARK: what earlier runs left waiting

    /// The pending files of one device, taken once (by its tag's ingest, or by `drain`).
    private func takePending(device: String) -> [CopyRecord]? {
        pending.update { $0.removeValue(forKey: device) }
    }

    /// Devices with files waiting from earlier runs that no tag of this run took.
    var pendingDevices: [String] { pending.value.keys.sorted() }

    /// Uploads and lists what an earlier run pulled from a device not in reach now, then writes its
    /// manifest (no clean: the tag is not here).
    func drain(device: String) async -> IngestTagReport {
        var report = IngestTagReport(tag: device, address: "-")
        guard let copies = takePending(device: device), !copies.isEmpty else { return report }
        console.info("\(device): \(copies.count) file(s) pulled earlier wait for S3; uploading them")
        let host = (try? ledger.runHost(device: device)) ?? "-"
        report.address = host
        report.files = await processAll(copies, host: host).sorted { $0.name < $1.name }
        guard fatal.value == nil, !Interrupt.isRequested else { return report }
        await closing(&report) { report in
            report.manifest = try await completeIfDone(device: device, host: host, files: report.files, failed: report.failed)
        }
        return report
    }

    private func processAll(_ copies: [CopyRecord], host: String) async -> [IngestFileOutcome] {
        await withTaskGroup(of: IngestFileOutcome.self) { group in
            for copy in copies where !Interrupt.isRequested {
                group.addTask { await self.process(copy, host: host, reserved: false) }
            }
            var out: [IngestFileOutcome] = []
            for await o in group { out.append(o) }
            return out
        }
    }

    /// The pull half, on the tag's thread: smallest files first, so sensor files reach S3 within
    /// seconds and the uplink is busy while the first big recording is still being pulled. Each
    /// verified copy is handed on at once; a file pulled earlier and still held is handed on as it is.
    private func feed(
        from tag: any TagConnection, target: TagTarget,
        into continuation: AsyncStream<(copy: CopyRecord, reserved: Bool)>.Continuation, report: inout TagPullReport
    ) throws {
        let checker = TagChecker(for: target, tag: tag, puller: puller)
        defer { report.files += checker.finish() }
        let partSize = streamer == nil ? nil : options.upload.partSize
        let plan = try puller.plan(tag, held: Self.isHeld).sorted {
            Self.order($0.file, streaming: partSize) < Self.order($1.file, streaming: partSize)
        }
        // Files of this device an earlier run pulled that still wait for S3 and that the tag no
        // longer offers (wiped on a local proof, say): uploaded and listed with the tag's own.
        // Taken now, before this pull ends, so the run's drain of absent devices never has them.
        if let waiting = takePending(device: tag.name) {
            let offered = Set(plan.compactMap { if case .skip(let c) = $0.decision { c.localPath } else { nil } })
            for copy in waiting where !offered.contains(copy.localPath) { continuation.yield((copy, false)) }
        }
        for planned in plan {
            // SIGINT/SIGTERM: no new file.
            if Interrupt.isRequested { break }
            let file = planned.file
            if let settled = planned.settledOutcome {
                if case .skip(let copy) = planned.decision { continuation.yield((copy, false)) }
                if file.isRegular { puller.meter.fileFinished(skippedBytes: file.size, skipped: true) }
                report.files.append(settled)
                continue
            }
            if let e = fatal.value { throw PullError.stopped(reason: "\(e)") }
            budget.reserve(file.size)
            let landed = stream(file, device: tag.name, checker: checker)
            // A FLAC the firmware wrote is measured as it arrives: QC costs no second read.
            let analyzer = options.compress.qc.flatMap { qc in
                file.name.lowercased().hasSuffix(".flac") && file.size > 0 ? FLACAnalyzer(name: file.name, thresholds: qc.audio) : nil
            }
            do {
                // Confirmed by the tag while the next file arrives, then handed on.
                let download = try puller.download(
                    file, from: tag, landed: landed.map { mark in { mark.advance(to: $0) } }, observe: analyzer.map { a in { a.feed($0) } })
                let measured = analyzer?.finish()
                try checker.confirm(download) { [budget, ledger, pulledQC] _, copy in
                    if let copy, let measured {
                        try? ledger.recordQC(path: copy.localPath, sha256: copy.sha256, measured)
                        pulledQC.update { $0[copy.localPath] = measured }
                    }
                    if let copy { continuation.yield((copy, true)) } else { budget.release(file.size) }
                    if copy == nil { landed?.abandon() }
                }
            } catch {
                // What is on disk stays good for the rerun to resume: its parts may still go.
                landed?.close()
                budget.release(file.size)
                // Interrupted between two chunks: the partial stays for the next run to resume.
                if error is Interrupted { break }
                puller.meter.fileFinished(skippedBytes: file.size, failed: true)
                report.files.append(
                    PlannedPull.forgiving(PullOutcome(action: .failed, name: file.name, size: file.size, message: "\(error)"), after: error)
                )
            }
        }
    }

    /// Starts streaming `file` to S3 while it is pulled, when it is worth it and S3 answers: the
    /// tag is asked for its checksum now (on the checker's connection), and the parts follow the
    /// bytes on disk. Returns what the pull must advance, or nil.
    private func stream(_ file: RemoteFile, device: String, checker: TagChecker) -> Watermark? {
        guard let streamer, fatal.value == nil, uplink.isOnline, PartStreamer.streams(file, partSize: options.upload.partSize)
        else { return nil }
        let landed = Watermark()
        let (answer, said) = AsyncStream.makeStream(of: String?.self)
        checker.ahead(file.name) { sha in
            said.yield(sha)
            said.finish()
        }
        let dir = puller.localDirectory(device: device)
        let final = dir + "/" + file.name
        let task = Task { [self] in
            var sha: String?
            for await s in answer { sha = s }
            do {
                return try await streamer.send(
                    file, device: device, final: final, partial: dir + "/" + NameCodec.partialName(for: file.name), tagSHA256: sha,
                    landed: landed)
            } catch let e as S3Error where e.isFatal {
                noteFatal(e)
            } catch {}
            return nil
        }
        streams.update { $0[final] = task }
        return landed
    }

    /// The order files go in: sensor data, configs and everything small first (a scientist on
    /// shore gets the tag's story within seconds), then what goes up as it arrives (large FLACs
    /// the firmware wrote, streamed while pulled: the uplink is busy from the start), then what
    /// must be whole before it can go (CSVs to gzip, raw audio to encode), smallest first within
    /// each, logs last (they change on every login: the newest state is best). `streaming`: the
    /// part size when large as-is files are streamed (nil: they wait their turn by kind and size).
    static func order(_ file: RemoteFile, streaming partSize: Int64? = nil) -> (Int, Int, Int64, String) {
        let rank = TransferWindow.rank(file.name)
        var group = 2
        if rank == 2 {
            group = 3
        } else if let partSize, PartStreamer.streams(file, partSize: partSize) {
            group = 1
        } else if rank == 0, file.size <= partSize ?? .max {
            group = 0
        }
        return (group, rank, file.size, file.name)
    }

    /// A file pulled earlier needs no new pull while its copy or a verified output of it is in
    /// staging, or once a complete manifest lists it.
    static func isHeld(_ f: PulledFile) -> Bool {
        access(fsPath(f.copy.localPath), F_OK) == 0
            || f.derivatives.contains { FileWalker.fingerprint(path: $0.key)?.size == $0.value }
            || f.complete
    }

    // MARK: one file

    private func process(_ copy: CopyRecord, host: String, reserved: Bool) async -> IngestFileOutcome {
        // Held until the file is uploaded, or until it waits for S3 (then it is done locally and
        // must not stop the tags from being offloaded).
        let reservation = Locked(reserved)
        @Sendable func release() {
            if reservation.update({ r in
                defer { r = false }; return r
            }) {
                budget.release(copy.size)
            }
        }
        defer { release() }
        let name = (copy.remotePath as NSString).lastPathComponent
        var o = IngestFileOutcome(action: .failed, device: copy.device, name: name, size: copy.size)
        // Its parts streamed while it was pulled: those in flight land before the upload step
        // takes the multipart upload over.
        let streamed = await streams.update({ $0.removeValue(forKey: copy.localPath) })?.value
        if let e = fatal.value {
            o.message = "\(e)"
            return o
        }
        do {
            if let listed = try ledger.ingestedIn(device: copy.device, remotePath: copy.remotePath, sha256: copy.sha256),
                listed.complete
            {
                o.action = .alreadyIngested
                console.verbose("\(copy.device)/\(name.printable): already in the complete manifest of run \(listed.run)")
                return o
            }
            // 1. Raw audio → FLAC, CSV → gzip, verified; the pulled original goes once its output is recorded.
            //    An empty file (a sensor that logged nothing) has nothing to compress: it goes as it is.
            //    A file that cannot be encoded goes up as it is, flagged in its manifest entry, so it
            //    never holds back its tag's manifest and clean.
            var path = copy.localPath
            var derived: Compressor.Derived?
            let note = asIsReason(copy)
            if copy.size > 0, note == nil, let kind = Compressor.kind(of: copy.localPath) {
                derived = try await compress(copy, kind: kind, name: name)
                path = derived!.record.outputPath
                o.derivative = (path as NSString).lastPathComponent
            }
            o.qc = await measure(copy, derived: derived, note: note, name: name)
            let expected = derived?.record.outputSHA256 ?? copy.sha256
            guard let fingerprint = FileWalker.fingerprint(path: path) else { throw IngestError.missing(path: path) }
            // 2. A second local copy, verified: done with or without the uplink.
            if let dir = options.backupDir {
                o.backup = try await backUp(
                    path, sha256: expected, size: fingerprint.size,
                    to: "\(dir)/\(run.localDate)/\(copy.device)/\((path as NSString).lastPathComponent)")
            }
            // 3. Upload, verified (or proven already there), and holding exactly the bytes verified
            //    on arrival (or the output verified after compression). While S3 cannot be
            //    reached the file waits for it; once the run gives up waiting, it stays queued.
            let file = LocalFile(
                path: path, device: copy.device, relativePath: (path as NSString).lastPathComponent, fingerprint: fingerprint)
            let hashed = derived?.hashed ?? streamed.flatMap { $0 }.map { HashedFile(fingerprint: fingerprint, hashes: $0) }
            guard let object = try await upload(file, hashed: hashed, whileWaiting: release) else {
                o.action = .queued
                o.queuedBytes = fingerprint.size
                try ledger.noteDevice(run: run.id, device: copy.device, host: host)
                try ledger.enqueue(copy)
                o.message = "waiting for S3"
                console.verbose("\(copy.device)/\(name.printable): done locally; its upload waits for S3")
                return o
            }
            guard !object.isFailure, let etag = object.etag, let sha = object.sha256 else {
                throw IngestError.step(object.message ?? "uploading \(path) failed")
            }
            guard sha == expected else {
                throw UploadError.changedSinceRecorded(
                    path: path, origin: derived == nil ? "pulled" : "compressed", recorded: expected, now: sha)
            }
            o.key = object.key
            o.upload = object.action.rawValue
            // 4. Listed for this run's manifest of the device.
            let entry = Manifest.Entry(
                name: name, remotePath: copy.remotePath, size: copy.size, mtime: copy.mtime, sha256: copy.sha256,
                derivative: derived.map { made in
                    let d = made.record
                    // The raw layout: as resolved for the encoding, or (encoded by an earlier run) the
                    // flags the ledger kept, with where it came from when that still says the same.
                    let layout =
                        made.layout.map { Manifest.Layout($0.format, from: $0.source) }
                        ?? (d.codec == "flac" && !d.inputPath.lowercased().hasSuffix(".wav")
                            ? RawFormat(flacFlags: d.parameters).map { used in
                                let now = RawLayout.resolve(d.inputPath, options: options.compress.raw)
                                return Manifest.Layout(used, from: now.format == used ? now.source : nil)
                            } : nil)
                    return Manifest.Derivative(
                        name: (d.outputPath as NSString).lastPathComponent, size: d.outputSize,
                        sha256: d.outputSHA256, codec: d.codec, parameters: d.parameters, flacMd5: d.flacMD5, layout: layout)
                },
                object: Manifest.Object(key: object.key, size: object.size, sha256: sha, etag: etag),
                note: note, qc: o.qc)
            o.message = note
            if !(try manifests.list(entry, run: run, device: copy.device, host: host)) {
                console.info(
                    "\(copy.device)/\(name.printable): this run's manifest of \(copy.device) is already complete; the next run lists it")
            }
            o.action = .ingested
            try ledger.dequeue(localPath: copy.localPath)
            if console.showsResults {
                console.result(
                    "ingested".padding(toLength: 10, withPad: " ", startingAt: 0)
                        + ByteSize.format(copy.size).padding(toLength: 11, withPad: " ", startingAt: 0)
                        + " \(copy.device)/\(name.printable) → s3://\(bucket)/\(object.key.printable) (\(object.action.rawValue))")
            }
        } catch let e as S3Error where e.isFatal {
            noteFatal(e)
            o.message = "\(e)"
        } catch {
            o.message = "\(error)"
            console.error("\(copy.device)/\(name.printable): \(error)")
        }
        return o
    }

    /// The upload step as ingest takes it: waits while S3 cannot be reached (calling
    /// `whileWaiting` once it starts to), tries again when it answers; nil once the run has given
    /// up waiting (the file stays queued in the ledger).
    private func upload(_ file: LocalFile, hashed: HashedFile?, whileWaiting: @Sendable () -> Void) async throws -> UploadOutcome? {
        while true {
            if !uplink.isOnline { whileWaiting() }
            uplink.waiting(file.fingerprint.size, 1)
            let online = await uplink.waitOnline()
            uplink.waiting(file.fingerprint.size, -1)
            guard online else {
                if let e = uplink.fatal { throw e }
                return nil
            }
            do {
                return try await uploads.run(size: file.fingerprint.size, rank: TransferWindow.rank(file.path)) { [self] in
                    // A refusal while this file waited for its slot: no new upload starts. (A
                    // refusal is noted before the slot is given back, so the next one sees it.)
                    if let e = fatal.value { throw e }
                    do {
                        return try await uploader.save(file, hashed: hashed)
                    } catch let e as S3Error where e.isFatal {
                        noteFatal(e)
                        throw e
                    }
                }
            } catch let e as S3Error where e.isUnreachable {
                uplink.lost(e.linkProblem)
            }
        }
    }

    /// The compress step for one pulled copy, on a pool thread, its output made of exactly the
    /// pulled bytes.
    private func compress(_ copy: CopyRecord, kind: Compressor.Kind, name: String) async throws -> Compressor.Derived {
        let produced = try await compressSlots.run {
            try await pool.run { [compressor] in
                // What `compress` would report per file; ingest reports its own outcome.
                var unused = CompressOutcome(action: .failed, input: copy.localPath, output: "", codec: "", inputSize: copy.size)
                do {
                    return try compressor.produce(copy.localPath, kind: kind, outcome: &unused)
                } catch CompressError.earlierVersion(_, let output) {
                    // A log that grew on the tag since an earlier version of it was compressed here.
                    throw IngestError.changedSinceIngested(device: copy.device, name: name, output: output)
                }
            }
        }
        guard let d = produced, d.record.inputSHA256 == copy.sha256 else {
            throw IngestError.notDerived(output: Compressor.outputPath(copy.localPath, kind), input: copy.localPath)
        }
        return d
    }

    /// The file's recording QC, judged: measured while it was encoded or pulled (or recorded by
    /// the run that did), else, for a FLAC the tag wrote, by decoding the local copy now (pulled
    /// by an earlier run). Nil with QC off, or for a file QC does not read.
    private func measure(_ copy: CopyRecord, derived: Compressor.Derived?, note: String?, name: String) async -> FileQC? {
        guard let thresholds = options.compress.qc, copy.size > 0, note == nil else { return nil }
        if let derived { return derived.qc.map(manifests.judge.judge) }
        guard name.lowercased().hasSuffix(".flac") else { return nil }
        if let pulled = pulledQC.update({ $0.removeValue(forKey: copy.localPath) }) { return manifests.judge.judge(pulled) }
        if let recorded = try? ledger.qc(path: copy.localPath, sha256: copy.sha256) { return manifests.judge.judge(recorded) }
        console.verbose("\(copy.device)/\(name.printable): QC reads the local copy (not measured as it was pulled)")
        let measured = try? await pool.run { [ledger] in
            let qc = try FLACAnalyzer.analyze(path: copy.localPath, name: name, thresholds: thresholds.audio)
            try ledger.recordQC(path: copy.localPath, sha256: copy.sha256, qc)
            return qc
        }
        return measured.map(manifests.judge.judge)
    }

    /// Why a file compress would take is uploaded as it is instead, or nil.
    private func asIsReason(_ copy: CopyRecord) -> String? {
        guard copy.size > 0, let kind = Compressor.kind(of: copy.localPath) else { return nil }
        if kind == .flacFromRaw || kind == .flacFromBin {
            let layout = RawLayout.resolve(copy.localPath, options: options.compress.raw)
            let frame = Int64(layout.format.frameBytes)
            if copy.size % frame != 0 {
                return "not whole frames of the raw layout (\(frame)-byte frames, from \(layout.source)): uploaded as it is"
            }
        }
        let output = (Compressor.outputPath(copy.localPath, kind) as NSString).lastPathComponent
        if NameCodec.decode(output).count > 255 {
            return "the compressed file's name would be longer than 255 bytes: uploaded as it is"
        }
        return nil
    }

    /// The backup step: a verified second copy, recorded.
    private func backUp(_ path: String, sha256: String, size: Int64, to dest: String) async throws -> String {
        if let b = try ledger.backup(path: dest), b.sha256 == sha256, FileWalker.fingerprint(path: dest)?.size == size {
            return dest
        }
        try await pool.run {
            if FileManager.default.fileExists(atPath: dest) {
                // Copied by a run stopped before it could record it: keep it only if identical.
                guard try FileHashes.sha256(path: dest) == sha256 else { throw IngestError.backupExists(path: dest) }
            } else {
                var st = stat()
                guard stat(path, &st) == 0 else { throw IngestError.missing(path: path) }
                guard try VerifiedCopy.copy(path, to: [dest], mtime: st.st_mtim) == sha256 else {
                    unlink(dest)
                    throw IngestError.changed(path: path)
                }
            }
        }
        try ledger.recordBackup(path: dest, sha256: sha256, size: size)
        return dest
    }
}

enum IngestError: Error, CustomStringConvertible {
    case step(String)
    case notDerived(output: String, input: String)
    case missing(path: String)
    case changed(path: String)
    case backupExists(path: String)
    case unverified(key: String)
    case changedSinceIngested(device: String, name: String, output: String)
    case manifestTaken(key: String)

    var description: String {
        switch self {
        case .step(let message): return message
        case .notDerived(let output, let input):
            return "\(output) is not recorded as the compressed output of the pulled \(input); both kept: move \(output) away and rerun"
        case .missing(let path): return "\(path) is gone from staging; rerun to pull it again"
        case .changed(let path): return "\(path) changed after it was uploaded; the backup copy was not kept"
        case .backupExists(let path): return "\(path) already exists with other content; it was kept: move it away and rerun"
        case .manifestTaken(let key):
            return "\(key) was already written by another ceti with other content (a copy of this ledger resuming the same run?); "
                + "it was left as it is and this run's manifest was not written: compare the two ledgers before going on"
        case .unverified(let key): return "s3://…/\(key) is not verified in the ledger; no manifest was written: rerun"
        case .changedSinceIngested(let device, let name, let output):
            return "\(name) changed on \(device) since an earlier version of it was compressed to \(output); both are kept "
                + "and the tag keeps its file. To upload the new version under a key of its own, rename it on the tag "
                + "(e.g. to \((name as NSString).deletingPathExtension)-2.\((name as NSString).pathExtension)) and rerun"
        }
    }
}
