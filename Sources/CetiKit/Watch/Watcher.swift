import Foundation

/// The watch loop: one scan after another over the roots, each session's state kept in the
/// ledger (`WatchSessionRecord`) and shown on the board; complete sessions uploaded one at a
/// time, so a slow one never lets two compete for the link, and a failed one waits its backoff
/// while the others go on. A ticker beside the loop moves the progress bar and sees stalls.
final class Watcher: Sendable {
    let options: WatchOptions
    let ledger: Ledger
    let store: any ObjectStore
    let pool: BlockingPool
    let board: StatusBoard
    let notifier: Notifier?
    let console: Console
    let clock: any WallClock
    /// The ledger's own files: never part of a session.
    let excluded: Set<String>
    /// Bytes the uploads have sent (the progress of the session in hand, and stalls).
    let meter: ProgressMeter
    /// The session being uploaded and the meter's count when it started.
    private let current = Locked<(key: String, start: Int64)?>(nil)
    /// When a byte last moved, and whether the stall since then was reported.
    private let moved: Locked<(bytes: Int64, at: Date, reported: Bool)>
    private let host = Notifier.hostName

    init(
        options: WatchOptions, ledger: Ledger, store: any ObjectStore, pool: BlockingPool, board: StatusBoard, notifier: Notifier?,
        console: Console, clock: any WallClock, excluded: Set<String>
    ) {
        self.options = options
        self.ledger = ledger
        self.store = store
        self.pool = pool
        self.board = board
        self.notifier = notifier
        self.console = console
        self.clock = clock
        self.excluded = excluded
        meter = ProgressMeter(console: console)
        moved = Locked((0, clock.now(), false))
    }

    func run() async throws -> WatchSummary {
        var summary = WatchSummary()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.tick() }
            while true {
                summary = try await scan(summary)
                summary.scans += 1
                if options.once || Interrupt.isRequested { break }
                try await pause(options.config.intervalSeconds)
                if Interrupt.isRequested { break }
            }
            group.cancelAll()
        }
        try Interrupt.check()
        summary.sessions = board.snapshot.sessions
        return summary
    }

    /// Sleeps `seconds`, waking early for a signal.
    private func pause(_ seconds: Double) async throws {
        let end = clock.now().addingTimeInterval(seconds)
        while clock.now() < end && !Interrupt.isRequested {
            try await clock.sleep(seconds: min(0.25, end.timeIntervalSince(clock.now())))
        }
    }

    // MARK: one scan

    private func scan(_ before: WatchSummary) async throws -> WatchSummary {
        var summary = before
        await notifier?.retryPending()
        var records = Dictionary(uniqueKeysWithValues: try ledger.watchSessions().map { (Self.key($0.root, $0.name), $0) })
        var seen = Set<String>()
        var sizes: [String: (files: Int, bytes: Int64)] = [:]
        for root in options.config.roots {
            guard let profile = options.config.profiles[root.profile] else { continue }
            let sessions: [SessionSnapshot]
            do {
                sessions = try await pool.run { [excluded] in try SessionScanner.scan(root, profile: profile, excluding: excluded) }
            } catch {
                console.error("\(error)")
                // Its sessions stay as they were: a drive that is not mounted lost nothing.
                records.keys.filter { $0.hasPrefix(root.path + "\u{0}") }.forEach { seen.insert($0) }
                continue
            }
            for session in sessions {
                if Interrupt.isRequested { break }
                let key = Self.key(root.path, session.name)
                seen.insert(key)
                sizes[key] = (session.files.count, session.bytes)
                var record = decide(session, profile: profile, record: records[key])
                try ledger.saveWatchSession(record)
                records[key] = record
                show(records, sizes: sizes)
                if record.state == .uploading {
                    record = try await attempt(session, root: root, profile: profile, record: record, summary: &summary)
                    records[key] = record
                    show(records, sizes: sizes)
                }
            }
        }
        // A session that is gone before it completed (removed by hand) is forgotten.
        for (key, record) in records where !seen.contains(key) && record.state != .complete {
            records[key] = nil
            try ledger.forgetWatchSession(root: record.root, name: record.name)
        }
        show(records, sizes: sizes)
        board.update { $0.lastScanAt = Timestamp.iso8601(clock.now()) }
        return summary
    }

    /// The session's state before this scan acts: what changed, and whether it is ready.
    private func decide(_ s: SessionSnapshot, profile: WatchConfig.Profile, record old: WatchSessionRecord?) -> WatchSessionRecord {
        let now = Int64(clock.now().timeIntervalSince1970)
        // First seen: stable since its newest file was written (so `--once` from cron uploads a
        // session that has long been finished); seen to change: from now.
        var r =
            old
            ?? WatchSessionRecord(
                root: s.root, name: s.name, fingerprint: s.fingerprint, changedAt: min(now, s.newestMTime), state: .waiting)
        if r.fingerprint != s.fingerprint {
            r.fingerprint = s.fingerprint
            r.changedAt = now
            r.attempts = 0
            r.nextAttemptAt = nil
        }
        if r.doneFingerprint == s.fingerprint {
            r.state = .complete
        } else if s.files.isEmpty {
            r.state = .waiting
            r.lastError = nil
        } else if !s.missingMarkers.isEmpty {
            r.state = .incomplete
            r.lastError = "waiting for " + s.missingMarkers.joined(separator: ", ")
        } else if let maxAge = profile.maxAgeSeconds, Double(now - s.newestMTime) > maxAge {
            r.state = .tooOld
            r.lastError = "its newest file is older than max_age: not uploaded"
        } else if Double(now - r.changedAt) < profile.stableForSeconds {
            r.state = .waiting
            r.lastError = nil
        } else if r.state == .failed, let next = r.nextAttemptAt, next > now {
            r.state = .failed
        } else {
            r.state = .uploading
        }
        return r
    }

    /// Uploads one complete session (resuming its run after a failure or a kill), then acts as
    /// `after_upload` says and tells the notifier.
    private func attempt(
        _ session: SessionSnapshot, root: WatchConfig.Root, profile: WatchConfig.Profile, record start: WatchSessionRecord,
        summary: inout WatchSummary
    ) async throws -> WatchSessionRecord {
        var record = start
        let run = try record.runID.flatMap { try ledger.run(id: $0) } ?? ledger.newWatchRun(now: clock.now())
        record.runID = run.id
        try ledger.saveWatchSession(record)
        let label = "\(root.path)/\(session.name)".printable
        console.info("\(label): complete (\(session.files.count) file(s), \(ByteSize.format(session.bytes))); uploading as run \(run.id)")
        current.value = (Self.key(root.path, session.name), meter.bytesSent)
        defer { current.value = nil }
        let bucket = root.bucket ?? options.bucket ?? ""
        var upload = UploadOptions(
            directories: [], bucket: bucket, keyTemplate: try KeyTemplate(KeyTemplate.default), ledgerPath: ledger.path)
        upload.prefix = root.prefix ?? options.prefix
        upload.jobs = options.jobs
        upload.partSize = options.partSize
        do {
            let uploader = Uploader(
                options: upload, s3: store, ledger: ledger, console: console, meter: meter, pool: pool,
                remote: try await RemoteIndex.build(s3: store, bucket: bucket, keys: []))
            var compress = CompressOptions(directories: [], ledgerPath: ledger.path, jobs: 1)
            (compress.raw, compress.flacLevel, compress.gzipLevel, compress.qc) = (
                options.raw, options.flacLevel, options.gzipLevel, options.qc
            )
            var compressor = Compressor(options: compress, ledger: ledger, gzipThreads: ProcessInfo.processInfo.activeProcessorCount)
            compressor.partSize = options.partSize
            let done = try await SessionUploader(
                ledger: ledger, uploader: uploader,
                manifests: ManifestWriter(
                    ledger: ledger, store: store, bucket: bucket, prefix: upload.prefix, console: console,
                    judge: QCJudge(thresholds: options.qc)),
                compressor: profile.compress ? compressor : nil, pool: pool, host: host, jobs: options.jobs, console: console
            ).upload(session, run: run)
            try ledger.finishRun(run.id)
            console.info(
                done.manifest.map { "\(label): \(done.files) file(s) in \($0.printable), then _COMPLETE" }
                    ?? "\(label): every file is in S3 and listed by an earlier manifest")
            // What the session holds now (compress replaced originals): unchanged from here on means done.
            let after = try await pool.run { [excluded] in
                try SessionScanner.snapshot(root: root.path, name: session.name, profile: profile, excluding: excluded)
            }
            record.doneFingerprint = after.fingerprint
            record.fingerprint = after.fingerprint
            (record.state, record.manifest, record.lastError, record.runID) = (.complete, done.manifest ?? record.manifest, nil, nil)
            (record.attempts, record.nextAttemptAt) = (0, nil)
            try ledger.saveWatchSession(record)
            board.update {
                $0.uploadedBytes += done.bytes
                $0.lastSuccessAt = Timestamp.iso8601(clock.now())
                $0.lastSuccessEpoch = clock.now().timeIntervalSince1970
            }
            summary.uploaded.append(label)
            moved.update { $0 = (meter.bytesSent, clock.now(), false) }
            await notifier?.post(
                event(
                    .complete, session, root: root,
                    text: "ceti: \(session.name) uploaded (\(done.files) files, \(ByteSize.format(done.bytes)))",
                    files: done.files, bytes: done.bytes, manifest: done.manifest ?? record.manifest))
            do {
                try await afterUpload(after, root: root, profile: profile, upload: upload)
            } catch {
                console.error("\(label): uploaded, but after_upload \(profile.afterUpload.rawValue) failed: \(error)")
            }
        } catch let e as Interrupted {
            throw e
        } catch {
            let now = Int64(clock.now().timeIntervalSince1970)
            record.attempts += 1
            // 1, 2, 4… intervals, at most an hour: a dead link is asked again, not hammered.
            let backoff = min(3600, options.config.intervalSeconds * pow(2, Double(min(record.attempts - 1, 12))))
            (record.state, record.lastError, record.nextAttemptAt) = (.failed, "\(error)", now + Int64(backoff))
            try ledger.saveWatchSession(record)
            console.error("\(label): \(error)")
            summary.failed.append(label)
            let problems = (error as? SessionUploader.SessionError)?.problems ?? ["\(error)"]
            await notifier?.post(
                event(
                    .failed, session, root: root, text: "ceti: \(session.name) failed: \(problems.first ?? "")",
                    files: session.files.count, bytes: session.bytes, manifest: nil, errors: problems))
        }
        return record
    }

    private func event(
        _ kind: WatchEvent.Kind, _ s: SessionSnapshot, root: WatchConfig.Root, text: String, files: Int, bytes: Int64, manifest: String?,
        errors: [String] = []
    ) -> WatchEvent {
        WatchEvent(
            event: kind, session: s.name, root: root.path, files: files, bytes: bytes, manifest: manifest, errors: errors, text: text,
            host: host, at: Timestamp.iso8601(clock.now()))
    }

    // MARK: after the upload

    private func afterUpload(_ s: SessionSnapshot, root: WatchConfig.Root, profile: WatchConfig.Profile, upload: UploadOptions) async throws
    {
        switch profile.afterUpload {
        case .keep:
            return
        case .move:
            let base = root.path + "/" + SessionScanner.processedFolder + "/" + s.name
            var target = base
            var n = 1
            while FileManager.default.fileExists(atPath: target) {
                n += 1
                target = base + "-\(n)"
            }
            try FileManager.default.createDirectory(
                atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard rename(fsPath(s.path), fsPath(target)) == 0 else { throw FileIOError.write(path: target, errno: errno) }
            console.info("\(s.path.printable): moved to \(target.printable)")
        case .deleteLocal:
            var kept: [String] = []
            for f in s.files {
                // Its own proof: this file, unchanged since it was hashed, is a verified object of
                // this bucket that S3 still holds, asked just now.
                guard let recorded = try ledger.file(path: f.path),
                    let object = try ledger.proof(
                        record: recorded, fingerprint: f.fingerprint, bucket: upload.bucket,
                        key: upload.key(for: f, plannedDate: recorded.plannedDate)),
                    let head = try await store.headObject(bucket: upload.bucket, key: object.key), head.size == object.size,
                    head.etag == object.etag
                else {
                    kept.append(f.relativePath)
                    continue
                }
                guard unlink(fsPath(f.path)) == 0 else { throw FileIOError.write(path: f.path, errno: errno) }
            }
            Self.removeEmptyFolders(s.path)
            if kept.isEmpty {
                console.info("\(s.path.printable): every file deleted, each after S3 confirmed its object")
            } else {
                console.error(
                    "\(s.path.printable): kept \(kept.count) file(s) S3 could not be shown to hold: \(kept.prefix(5).joined(separator: ", "))"
                )
            }
        }
    }

    /// The folder and the folders in it that are empty now, deepest first.
    static func removeEmptyFolders(_ path: String) {
        let subfolders = (FileManager.default.enumerator(atPath: path)?.allObjects as? [String]) ?? []
        for rel in subfolders.sorted(by: { $0.count > $1.count }) { rmdir(path + "/" + rel) }
        rmdir(path)
    }

    // MARK: the board

    private static func key(_ root: String, _ name: String) -> String { root + "\u{0}" + name }

    private func show(_ records: [String: WatchSessionRecord], sizes: [String: (files: Int, bytes: Int64)]) {
        let sessions = records.sorted { $0.key < $1.key }.map { key, r in
            WatchStatus.Session(
                root: r.root, name: r.name, profile: options.config.roots.first { $0.path == r.root }?.profile ?? "",
                state: r.state, files: sizes[key]?.files ?? 0, bytes: sizes[key]?.bytes ?? 0,
                uploadedBytes: r.state == .complete ? sizes[key]?.bytes ?? 0 : 0, manifest: r.manifest, error: r.lastError,
                changedAt: Timestamp.iso8601(Date(timeIntervalSince1970: Double(r.changedAt))), updatedAt: Timestamp.iso8601(clock.now()),
                nextAttemptAt: r.nextAttemptAt.map { Timestamp.iso8601(Date(timeIntervalSince1970: Double($0))) })
        }
        board.update {
            $0.sessions = sessions
            $0.pendingBytes = sessions.filter { $0.state != .complete && $0.state != .tooOld }.reduce(0) { $0 + $1.bytes }
        }
    }

    /// Every second: the session in hand's progress on the board, and a `stalled` notification
    /// once no byte has moved for `stall_after` while a session is uploading or waiting to retry.
    private func tick() async throws {
        while !Task.isCancelled {
            try await clock.sleep(seconds: 1)
            let sent = meter.bytesSent
            if let c = current.value {
                board.update { status in
                    if let i = status.sessions.firstIndex(where: { Self.key($0.root, $0.name) == c.key }) {
                        status.sessions[i].uploadedBytes = min(status.sessions[i].bytes, sent - c.start)
                    }
                }
            }
            let pending = board.snapshot.sessions.filter { $0.state == .uploading || $0.state == .failed }
            let now = clock.now()
            let stalled = moved.update { (m: inout (bytes: Int64, at: Date, reported: Bool)) -> Bool in
                if sent != m.bytes || pending.isEmpty {
                    m = (sent, now, false)
                    return false
                }
                guard notifier != nil, let after = options.config.notify?.stallAfterSeconds, !m.reported,
                    now.timeIntervalSince(m.at) >= after
                else { return false }
                m.reported = true
                return true
            }
            if stalled, let first = pending.first {
                console.error(
                    "no byte has moved for \(Int(now.timeIntervalSince(moved.value.at))) s while \(pending.count) session(s) wait")
                await notifier?.post(
                    WatchEvent(
                        event: .stalled, session: first.name, root: first.root, files: pending.reduce(0) { $0 + $1.files },
                        bytes: pending.reduce(0) { $0 + $1.bytes }, manifest: nil, errors: pending.compactMap(\.error),
                        text: "ceti: uploads stalled: no byte moved while \(pending.count) session(s) wait", host: host,
                        at: Timestamp.iso8601(now)))
            }
        }
    }
}
