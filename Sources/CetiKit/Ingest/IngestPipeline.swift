import Foundation

/// One tag through ingest: its pull runs on a thread of its own and hands over each verified file
/// at once; every file is then compressed, uploaded, backed up and listed for the manifest while
/// the next one is still arriving. When every file of the tag is verified in S3, the manifest and
/// `_COMPLETE` are written, and only then (with --clean) is the tag wiped of what is proven.
final class IngestPipeline: @unchecked Sendable {
    let options: IngestOptions
    let run: IngestRunRecord
    let ledger: Ledger
    let s3: S3Client
    let puller: TagPuller
    let compressor: Compressor
    let uploader: Uploader
    let console: Console
    let tagPool: BlockingPool
    let compressPool: BlockingPool
    let copyPool: BlockingPool
    let uploads: AsyncLimiter
    let budget: StagingBudget
    /// The first fatal S3 error (refused credentials, missing bucket): the run stops starting new
    /// work and ends with it.
    let fatal = Locked<S3Error?>(nil)

    init(
        options: IngestOptions, run: IngestRunRecord, ledger: Ledger, s3: S3Client, puller: TagPuller, uploader: Uploader,
        console: Console, tags: Int
    ) {
        self.options = options
        self.run = run
        self.ledger = ledger
        self.s3 = s3
        self.puller = puller
        self.uploader = uploader
        self.console = console
        let cores = ProcessInfo.processInfo.activeProcessorCount
        compressor = Compressor(options: options.compress, ledger: ledger, gzipThreads: max(1, cores))
        tagPool = BlockingPool(threads: max(1, min(options.pull.jobs, tags)), name: "ceti-tag")
        compressPool = BlockingPool(threads: max(1, options.compress.jobs), name: "ceti-compress")
        copyPool = BlockingPool(threads: 1, name: "ceti-backup")
        uploads = AsyncLimiter(options.upload.jobs)
        budget = StagingBudget(limit: options.maxStaging)
    }

    private var bucket: String { options.upload.bucket }

    func ingest(_ target: TagTarget) async -> IngestTagReport {
        let address = target.address
        var report = IngestTagReport(tag: target.name ?? address, address: address)
        let (stream, continuation) = AsyncStream.makeStream(of: (copy: CopyRecord, reserved: Bool).self)
        let folderLock = Locked<FileLock?>(nil)
        defer { folderLock.value = nil }
        let hooks = PullHooks(
            beforeDownload: { [budget] in budget.reserve($0) },
            ready: { continuation.yield(($0, $1)) },
            stillHeld: { [self] in stillHeld($0) },
            abandoned: { [budget] in budget.release($0) },
            stopReason: { [fatal] in fatal.value.map { "\($0)" } },
            holdLock: { folderLock.value = $0 })
        let pull = Task { [tagPool, puller] in
            try await tagPool.run {
                defer { continuation.finish() }
                return puller.pull(target, hooks: hooks)
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
                group.addTask { await self.process(item.copy, host: address, reserved: item.reserved) }
            }
            for await o in group { outcomes.append(o) }
        }
        // The pool's body never throws: the pull reports its own failures.
        let pulled = (try? await pull.value) ?? TagPullReport(tag: report.tag, address: address, error: "the pull was interrupted")
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
        WhaleTagRun.report(pulled, console: console, results: false)

        do {
            if !report.failed {
                report.manifest = try await complete(device: report.tag, host: address)
            } else if ledgerKnows(device: report.tag) {
                console.error("\(report.tag): no manifest in this run because of the failures above; rerun to finish it")
            }
            // A file that failed never holds back the others: each file is deleted only on its own
            // proof (TagCleaner asks S3 just before each delete). A tag that could not be reached,
            // or whose manifest could not be written, is left alone.
            guard fatal.value == nil, options.clean, report.error == nil else { return report }
            let named = TagTarget(address: address, port: target.port, name: report.tag)
            report.cleaned = try await tagPool.run { [puller] in try puller.clean(named) }
            WhaleTagRun.reportCleaned(report.cleaned, tag: report.tag, console: console)
        } catch let e as S3Error where e.isFatal {
            fatal.update { $0 = $0 ?? e }
        } catch {
            report.error = "\(error)"
            console.error("\(report.tag): \(error)")
        }
        return report
    }

    /// A file pulled earlier needs no new pull while its copy or its verified output is in staging,
    /// or once a complete manifest lists it.
    private func stillHeld(_ copy: CopyRecord) -> Bool {
        if FileManager.default.fileExists(atPath: copy.localPath) { return true }
        if let kind = Compressor.kind(of: copy.localPath) {
            let output = Compressor.outputPath(copy.localPath, kind)
            if let d = try? ledger.derivative(outputPath: output), d.inputSHA256 == copy.sha256,
                FileWalker.fingerprint(path: output)?.size == d.outputSize
            {
                return true
            }
        }
        return (try? ledger.ingestedIn(device: copy.device, remotePath: copy.remotePath, sha256: copy.sha256))??.complete ?? false
    }

    private func ledgerKnows(device: String) -> Bool { (try? ledger.runDevice(run: run.id, device: device)) != nil }

    // MARK: one file

    private func process(_ copy: CopyRecord, host: String, reserved: Bool) async -> IngestFileOutcome {
        defer { if reserved { budget.release(copy.size) } }
        let name = (copy.remotePath as NSString).lastPathComponent
        var o = IngestFileOutcome(action: .failed, device: copy.device, name: name, size: copy.size)
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
            var path = copy.localPath
            var derivative: DerivativeRecord?
            // A file that cannot be encoded goes up as it is, flagged in its manifest entry, so it
            // never holds back its tag's manifest and clean.
            let note = asIsReason(copy)
            if copy.size > 0, note == nil, let kind = Compressor.kind(of: copy.localPath) {
                let produced = try await compressPool.run { [compressor] in
                    // What `compress` would report per file; ingest reports its own outcome.
                    var unused = CompressOutcome(action: .failed, input: copy.localPath, output: "", codec: "", inputSize: copy.size)
                    do {
                        return try compressor.produce(copy.localPath, kind: kind, outcome: &unused)
                    } catch CompressError.earlierVersion(_, let output) {
                        // A log that grew on the tag since an earlier version of it was compressed here.
                        throw IngestError.changedSinceIngested(device: copy.device, name: name, output: output)
                    }
                }
                guard let d = produced, d.inputSHA256 == copy.sha256 else {
                    throw IngestError.notDerived(output: Compressor.outputPath(copy.localPath, kind), input: copy.localPath)
                }
                derivative = d
                path = d.outputPath
                o.derivative = (d.outputPath as NSString).lastPathComponent
            }
            // 2. Upload, verified (or proven already there), and holding exactly the bytes verified
            //    on arrival (or the output verified after compression).
            let object = try await upload(path, device: copy.device)
            let expected = derivative?.outputSHA256 ?? copy.sha256
            guard object.sha256 == expected else {
                throw UploadError.changedSinceRecorded(
                    path: path, origin: derivative == nil ? "pulled" : "compressed",
                    recorded: expected, now: object.sha256)
            }
            o.key = object.key
            o.upload = object.action
            // 3. A second local copy, verified.
            if let dir = options.backupDir {
                o.backup = try await backUp(
                    path, sha256: object.sha256, size: object.size,
                    to: "\(dir)/\(run.localDate)/\(copy.device)/\((path as NSString).lastPathComponent)")
            }
            // 4. Listed for this run's manifest of the device.
            let entry = Manifest.Entry(
                name: name, remotePath: copy.remotePath, size: copy.size, mtime: copy.mtime, sha256: copy.sha256,
                derivative: derivative.map {
                    Manifest.Derivative(
                        name: ($0.outputPath as NSString).lastPathComponent, size: $0.outputSize,
                        sha256: $0.outputSHA256, codec: $0.codec, parameters: $0.parameters, flacMd5: $0.flacMD5)
                },
                object: Manifest.Object(key: object.key, size: object.size, sha256: object.sha256, etag: object.etag),
                note: note)
            o.message = note
            let json = String(decoding: try Manifest.encoder.encode(entry), as: UTF8.self)
            if !(try ledger.assign(
                run: run.id, device: copy.device, host: host, remotePath: copy.remotePath,
                sha256: copy.sha256, entry: json))
            {
                console.info(
                    "\(copy.device)/\(name.printable): this run's manifest of \(copy.device) is already complete; the next run lists it")
            }
            o.action = .ingested
            if console.showsResults {
                console.result(
                    "ingested".padding(toLength: 10, withPad: " ", startingAt: 0)
                        + ByteSize.format(copy.size).padding(toLength: 11, withPad: " ", startingAt: 0)
                        + " \(copy.device)/\(name.printable) → s3://\(bucket)/\(object.key.printable) (\(object.action))")
            }
        } catch let e as S3Error where e.isFatal {
            fatal.update { $0 = $0 ?? e }
            o.message = "\(e)"
        } catch {
            o.message = "\(error)"
            console.error("\(copy.device)/\(name.printable): \(error)")
        }
        return o
    }

    /// Why a file compress would take is uploaded as it is instead, or nil.
    private func asIsReason(_ copy: CopyRecord) -> String? {
        guard copy.size > 0, let kind = Compressor.kind(of: copy.localPath) else { return nil }
        if kind == .flacFromRaw, copy.size % Int64(options.compress.raw.frameBytes) != 0 {
            return "not whole frames of the raw layout (\(options.compress.raw.frameBytes)-byte frames): uploaded as it is"
        }
        let output = (Compressor.outputPath(copy.localPath, kind) as NSString).lastPathComponent
        if NameCodec.decode(output).count > 255 {
            return "the compressed file's name would be longer than 255 bytes: uploaded as it is"
        }
        return nil
    }

    private struct Uploaded {
        var key: String
        var size: Int64
        var sha256: String
        var etag: String
        var action: String
    }

    private func upload(_ path: String, device: String) async throws -> Uploaded {
        guard let fingerprint = FileWalker.fingerprint(path: path) else { throw IngestError.missing(path: path) }
        let file = LocalFile(path: path, device: device, relativePath: (path as NSString).lastPathComponent, fingerprint: fingerprint)
        let (settled, work, newFiles) = try UploadRun.plan([file], options: options.upload, ledger: ledger)
        try ledger.insertNewFiles(newFiles)
        var outcome: UploadOutcome
        if let s = settled.first {
            outcome = s
        } else if let object = work[0].proof, try await uploader.isStillInS3(object) {
            outcome = .skipped(path, device: device, proof: object, size: object.size)
        } else {
            let p = work[0]
            // Keys of device files never land among the runs' manifests.
            if p.key.hasPrefix(Manifest.folder(prefix: options.upload.prefix, run: "", device: "")) {
                throw IngestError.keyInRunsFolder(key: p.key)
            }
            outcome = try await uploads.run { [uploader] in try await uploader.process(p.file, key: p.key, plannedDate: p.date) }
        }
        guard !outcome.isFailure, let etag = outcome.etag, let sha = outcome.sha256 else {
            throw IngestError.step(outcome.message ?? "uploading \(path) failed")
        }
        return Uploaded(key: outcome.key, size: outcome.size, sha256: sha, etag: etag, action: outcome.action.rawValue)
    }

    private func backUp(_ path: String, sha256: String, size: Int64, to dest: String) async throws -> String {
        if let b = try ledger.backup(path: dest), b.sha256 == sha256, FileWalker.fingerprint(path: dest)?.size == size {
            return dest
        }
        try await copyPool.run {
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

    // MARK: manifest and _COMPLETE

    /// Writes the device's manifest, then `_COMPLETE`; returns the manifest's s3:// address, or nil
    /// when nothing of this device belongs to this run.
    private func complete(device: String, host: String) async throws -> String? {
        try ledger.adoptPending(run: run.id, device: device, host: host)
        guard let state = try ledger.runDevice(run: run.id, device: device) else { return nil }
        let folder = Manifest.folder(prefix: options.upload.prefix, run: run.id, device: device)
        let manifestKey = folder + Manifest.fileName
        let completeKey = folder + Manifest.completeMarker
        if state.completedAt != nil { return "s3://\(bucket)/\(manifestKey)" }
        var entries = try ledger.runEntries(run: run.id, device: device).map {
            try Manifest.decoder.decode(Manifest.Entry.self, from: Data($0.utf8))
        }
        guard !entries.isEmpty else { return nil }

        // A run stopped right after writing _COMPLETE: the manifest there is final; files listed
        // since then wait for the next run.
        if try await s3.headObject(bucket: bucket, key: completeKey) != nil,
            let existing = try await s3.getObject(bucket: bucket, key: manifestKey)
        {
            let written = try Manifest.decode(existing.body)
            let listed = Set(written.files.map(\.remotePath))
            try ledger.release(run: run.id, device: device, keeping: listed)
            try ledger.recordManifest(run: run.id, device: device, key: manifestKey, etag: existing.etag)
            try ledger.recordComplete(run: run.id, device: device)
            return "s3://\(bucket)/\(manifestKey)"
        }

        // No manifest lists an object the ledger has not verified.
        for e in entries {
            guard let o = try ledger.object(bucket: bucket, key: e.object.key), o.etag == e.object.etag, o.sha256 == e.object.sha256 else {
                throw IngestError.unverified(key: e.object.key)
            }
        }
        entries.sort { $0.remotePath < $1.remotePath }
        let manifest = Manifest(
            schemaVersion: Manifest.currentSchema, runId: run.id, runStartedAt: run.startedAt,
            device: device, host: state.host, bucket: bucket, files: entries)
        let etag = try await put(try manifest.encoded(), key: manifestKey)
        try ledger.recordManifest(run: run.id, device: device, key: manifestKey, etag: etag)
        _ = try await put([], key: completeKey)
        try ledger.recordComplete(run: run.id, device: device)
        console.info("\(device): \(entries.count) file(s) in s3://\(bucket)/\(manifestKey), then \(Manifest.completeMarker)")
        return "s3://\(bucket)/\(manifestKey)"
    }

    private func put(_ body: [UInt8], key: String) async throws -> String {
        let md5 = Digest.md5(body)
        let sha = Digest.sha256(body)
        let etag = try await s3.putObject(
            bucket: bucket, key: key, body: .bytes(body), md5: md5, sha256: sha,
            metadata: [("sha256", sha.hex)])
        guard etag == md5.hex else { throw UploadError.etagMismatch(key: key, expected: md5.hex, got: etag) }
        return etag
    }
}

enum IngestError: Error, CustomStringConvertible {
    case step(String)
    case notDerived(output: String, input: String)
    case missing(path: String)
    case changed(path: String)
    case backupExists(path: String)
    case unverified(key: String)
    case keyInRunsFolder(key: String)
    case changedSinceIngested(device: String, name: String, output: String)

    var description: String {
        switch self {
        case .step(let message): return message
        case .notDerived(let output, let input):
            return "\(output) is not recorded as the compressed output of the pulled \(input); both kept: move \(output) away and rerun"
        case .missing(let path): return "\(path) is gone from staging; rerun to pull it again"
        case .changed(let path): return "\(path) changed after it was uploaded; the backup copy was not kept"
        case .backupExists(let path): return "\(path) already exists with other content; it was kept: move it away and rerun"
        case .unverified(let key): return "s3://…/\(key) is not verified in the ledger; no manifest was written: rerun"
        case .changedSinceIngested(let device, let name, let output):
            return "\(name) changed on \(device) since an earlier version of it was compressed to \(output); both are kept "
                + "and the tag keeps its file. To upload the new version under a key of its own, rename it on the tag "
                + "(e.g. to \((name as NSString).deletingPathExtension)-2.\((name as NSString).pathExtension)) and rerun"
        case .keyInRunsFolder(let key):
            return "the key \(key) would fall among the runs' manifests (\(Manifest.runsFolder)/); change --key-template"
        }
    }
}
