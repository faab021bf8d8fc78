import Foundation

/// The pull step of the tags capability: one tag's session (claimed once per process, its device
/// folder locked, its recorder stopped and restarted with --stop-capture), the plan of what to pull
/// (made before any pull from one ledger query), and one remote file → one verified local copy
/// (resumable `.ceti-part-…` download hashed while it arrives, confirmed by the tag's own
/// sha256sum, recorded). Blocking: run it on a pool thread. Commands compose these; the pull never
/// calls back into them.
final class TagPuller: Sendable {
    let options: PullOptions
    let ledger: Ledger
    let connector: any TagConnector
    let console: Console
    let meter: ProgressMeter
    let clock: any WallClock
    /// Tags already being pulled in this process, by hostname: two targets that reach the same
    /// tag (its name and an address, or two addresses) pull it once.
    private let claims = ClaimRegistry()

    init(
        options: PullOptions, ledger: Ledger, connector: any TagConnector, console: Console, meter: ProgressMeter,
        clock: any WallClock = SystemClock()
    ) {
        self.options = options
        self.ledger = ledger
        self.connector = connector
        self.console = console
        self.meter = meter
        self.clock = clock
    }

    /// In name form (`NameCodec`), as every remote path ceti keeps: `/data` is itself.
    var remoteDirectory: String {
        NameCodec.encodePath(options.remoteDir.hasSuffix("/") ? String(options.remoteDir.dropLast()) : options.remoteDir)
    }

    /// The device's staging folder, in name form (`fsPath` gives the bytes back at each call).
    func localDirectory(device: String) -> String { NameCodec.encodePath(options.dataDir + "/" + device) }

    // MARK: the tag's session

    /// Opens the tag, claims it for this process and (--stop-capture) stops its recorder; runs
    /// `body`; starts the recorder again whatever happened. Failures of
    /// the whole tag land in the report's `error`; `body` records its files in the report.
    func session(_ target: TagTarget, _ body: (any TagConnection, inout TagPullReport) throws -> Void) -> TagPullReport {
        var report = TagPullReport(tag: target.name ?? target.address, address: target.address)
        // SIGINT/SIGTERM: no new tag is started.
        if Interrupt.isRequested { return report }
        do {
            let tag = try connector.connect(target, expectedName: target.name)
            report.tag = tag.name
            // The identity is the hostname whose host key matched the pinned one.
            if let first = claims.claim(tag.name, by: target.description) {
                report.duplicateOf = first
                return report
            }
            guard options.stopCapture else {
                try body(tag, &report)
                report.files.sort { $0.name < $1.name }
                return report
            }
            // A connection of the switch's own (same tag, same pinned key): it renews the tag's
            // restart timer and starts the recorder again even while this one is in a read.
            let control = try connector.connect(target, expectedName: tag.name)
            let capture = try CaptureService.stop(control: control, graceSeconds: options.captureGraceSeconds, console: console)
            // Whatever happens next, the tag records again afterwards (the original tool never
            // restarted it, and tags went back to sea with the service off).
            defer {
                if let problem = capture.restart() {
                    report.error = [report.error, problem].compactMap { $0 }.joined(separator: "; ")
                }
            }
            try body(tag, &report)
        } catch {
            // Keep a capture-restart problem, if any, next to the error that ended the pull.
            report.error = ["\(error)", report.error].compactMap { $0 }.joined(separator: "; ")
        }
        report.files.sort { $0.name < $1.name }
        return report
    }

    /// Creates and locks the device's staging folder: one worker per folder, across processes
    /// too (two pulls, or a pull and a compress, could interleave the bytes of one file). Hold
    /// the lock until the files are done with; nil on a dry run.
    func lockFolder(device: String) throws -> FileLock? {
        guard !options.dryRun else { return nil }
        try FileManager.default.createDirectory(atPath: options.dataDir + "/" + device, withIntermediateDirectories: true)
        let dir = localDirectory(device: device)
        guard let lock = try FileLock(directory: dir) else { throw PullError.folderBusy(name: device, folder: dir) }
        return lock
    }

    // MARK: the plan

    /// What to do with each entry of the tag's folder, decided from one listing and one ledger
    /// query before anything is pulled. `held`: whether a file pulled earlier still needs no new
    /// pull (whaletag: always; ingest: while its copy or verified output is staged, or a complete
    /// manifest lists it).
    func plan(_ tag: any TagConnection, held: (PulledFile) -> Bool) throws -> [PlannedPull] {
        let known = try ledger.pulledFiles(device: tag.name)
        let listing = try tag.list(remoteDirectory)
        let regular = listing.filter(\.isRegular)
        meter.add(files: regular.count, bytes: regular.reduce(0) { $0 + $1.size })
        let planned = listing.map { file in
            if !file.isRegular {
                return PlannedPull(file: file, decision: .ignore(file.isDirectory ? "folder" : "not a regular file"))
            }
            // A log the firmware writes on every login (ours too) never settles: it is pulled as it
            // is, last, and a change while it is pulled is no failure (`PlannedPull.isLog`).
            if !PlannedPull.isLog(file.name), file.mtime > tag.now - options.settleSeconds {
                return PlannedPull(
                    file: file,
                    decision: .stillWriting(
                        "modified \(max(0, tag.now - file.mtime)) s ago: the tag may still be writing it; pull it later"))
            }
            if let pulled = known[remoteDirectory + "/" + file.name]?.first(where: {
                $0.copy.size == file.size && $0.copy.mtime == file.mtime
            }),
                held(pulled)
            {
                return PlannedPull(file: file, decision: .skip(pulled.copy))
            }
            return PlannedPull(file: file, decision: .pull)
        }
        return planned.filter { !PlannedPull.isLog($0.file.name) } + planned.filter { PlannedPull.isLog($0.file.name) }
    }

    // MARK: one file

    /// One remote file → one verified, recorded local copy (nil, with the outcome saying why,
    /// when the tag disowns the bytes).
    func pullFile(_ file: RemoteFile, from tag: any TagConnection) throws -> (PullOutcome, CopyRecord?) {
        try confirm([download(file, from: tag)], from: tag)[0]
    }

    /// What a pull would do, file by file (--dry-run): nothing is written.
    func preview(_ tag: any TagConnection) throws -> [PullOutcome] {
        try plan(tag, held: { _ in true }).map {
            $0.settledOutcome ?? PullOutcome(action: .wouldPull, name: $0.file.name, size: $0.file.size)
        }
    }

    /// A download waiting for the tag's confirmation.
    struct Download: Sendable {
        var outcome: PullOutcome
        var file: RemoteFile
        var sha256: String
        var part: String
    }

    /// Downloads into `.ceti-part-<hash of the name>` (`NameCodec.partialName`: a short name of
    /// ceti's own, so a 255-byte name fits and a tag's own `x.part` is never mistaken for one),
    /// continuing an earlier partial download (whose bytes are re-hashed, not re-sent). `landed`
    /// hears how many bytes of the file are on disk so far (a streamed upload follows them).
    /// `observe` sees every byte of the file once, in order (recording QC of a FLAC as it arrives).
    func download(
        _ file: RemoteFile, from tag: any TagConnection, landed: ((Int64) -> Void)? = nil,
        observe: ((UnsafeRawBufferPointer) -> Void)? = nil
    ) throws -> Download {
        let localDir = localDirectory(device: tag.name)
        let part = localDir + "/" + NameCodec.partialName(for: file.name)
        // A partial left as `<name>.part` by an earlier ceti: taken over, resumed and checked like
        // any other — unless the ledger knows that name as a pulled file (a tag's own `x.part`).
        let legacy = localDir + "/" + file.name + ".part"
        if access(fsPath(part), F_OK) != 0, access(fsPath(legacy), F_OK) == 0,
            (try? ledger.recordedContent(localPath: legacy) != nil) == false
        {
            _ = rename(fsPath(legacy), fsPath(part))
        }
        let fd = Glibc.open(fsPath(part), O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileIOError.write(path: part, errno: errno) }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        var have = Int64(st.st_size)
        if have > file.size {
            ftruncate(fd, 0)
            have = 0
        }
        var sha = Digest(.sha256)
        if have > 0 {
            try FileHashes.read(fd: fd, path: part, offset: 0, length: have) { bytes in
                sha.update(bytes)
                observe?(bytes)
            }
        }
        landed?(have)
        var offset = have
        let bytes = try tag.read(remoteDirectory + "/" + file.name, from: have) { chunk in
            try FileIO.writeAll(fd, part, chunk, at: offset)
            offset += Int64(chunk.count)
            landed?(offset)
            sha.update(chunk)
            observe?(chunk)
            meter.sent(Int64(chunk.count))
            // SIGINT/SIGTERM: stop between chunks; the bytes so far stay in the .part.
            try Interrupt.check()
        }
        guard offset == file.size else {
            throw PullError.sizeChanged(name: file.name, expected: file.size, got: offset)
        }
        guard fsync(fd) == 0 else { throw FileIOError.write(path: part, errno: errno) }
        meter.fileFinished()
        var outcome = PullOutcome(action: have > 0 ? .resumed : .pulled, name: file.name, size: file.size)
        outcome.bytesReceived = bytes
        return Download(outcome: outcome, file: file, sha256: sha.finalize().hex, part: part)
    }

    /// Confirms downloads against the tag's sha256sum (one command per batch of names), then
    /// renames each `.part` to its final name and records it. A mismatch removes the copy.
    /// `known`: the tag's checksums asked for earlier (before a streamed file's transfer ended).
    func confirm(_ received: [Download], from tag: any TagConnection, known: [String: String] = [:]) throws
        -> [(PullOutcome, CopyRecord?)]
    {
        let remoteDir = remoteDirectory
        let localDir = localDirectory(device: tag.name)
        var remote = known
        let asking = received.map(\.file.name).filter { known[$0] == nil }
        if options.remoteVerify, !asking.isEmpty {
            remote.merge(try RemoteChecksums.sha256(of: asking, in: remoteDir, on: tag)) { $1 }
        }
        var out: [(PullOutcome, CopyRecord?)] = []
        for var r in received {
            let final = localDir + "/" + r.file.name
            if options.remoteVerify && remote[r.file.name] != r.sha256 {
                unlink(fsPath(r.part))
                r.outcome.action = .failed
                r.outcome.message =
                    remote[r.file.name] == nil
                    ? "the tag could not checksum it; the copy was discarded, rerun to pull it again"
                    : "the copy's SHA-256 differs from the tag's; the copy was discarded, rerun to pull it again"
                out.append((r.outcome, nil))
                continue
            }
            if let existing = FileWalker.fingerprint(path: final),
                existing.size != r.file.size
                    || (try? FileHashes.sha256(path: final)) != r.sha256
            {
                r.outcome.action = .failed
                r.outcome.message =
                    "\(final) already exists with other content (an earlier file of the same name); "
                    + "it was kept and the new copy left as \(r.part): move one of them away and rerun"
                out.append((r.outcome, nil))
                continue
            }
            guard rename(fsPath(r.part), fsPath(final)) == 0 else {
                r.outcome.action = .failed
                r.outcome.message = "cannot rename \(r.part): \(String(cString: strerror(errno)))"
                out.append((r.outcome, nil))
                continue
            }
            FileHashes.syncDirectory(localDir)
            let copy = CopyRecord(
                device: tag.name, remotePath: remoteDir + "/" + r.file.name, size: r.file.size,
                mtime: r.file.mtime, sha256: r.sha256, localPath: final,
                remoteVerified: options.remoteVerify, verifiedAt: Timestamp.iso8601(clock.now()))
            try ledger.recordCopy(copy)
            r.outcome.localPath = final
            r.outcome.sha256 = r.sha256
            out.append((r.outcome, copy))
        }
        return out
    }
}

/// What the plan decided for one entry of a tag's folder.
struct PlannedPull: Sendable {
    enum Decision: Sendable {
        case pull
        /// Pulled before and still held: the recorded copy stands.
        case skip(CopyRecord)
        case stillWriting(String)
        case ignore(String)
    }
    var file: RemoteFile
    var decision: Decision

    /// `*.log`: written by the tag on every login. Pulled last; one that changed while it was
    /// pulled is left for the next run and fails nothing.
    static func isLog(_ name: String) -> Bool { name.lowercased().hasSuffix(".log") }

    /// A log's pull that failed because the log changed (its size while it was read, or its bytes
    /// before the tag's checksum), said as what it is: not a failure of the tag. `error`: what
    /// ended the download, when it did not finish (a lost connection stays a failure).
    static func forgiving(_ outcome: PullOutcome, after error: Error? = nil) -> PullOutcome {
        guard outcome.action == .failed, isLog(outcome.name) else { return outcome }
        if let error {
            guard case PullError.sizeChanged = error else { return outcome }
        }
        var o = outcome
        o.action = .stillWriting
        o.message = "a log the tag writes on every login changed while it was pulled (\(outcome.message ?? "")); pulled next time"
        return o
    }

    /// The outcome of a plan that moves no byte (skip, still writing, ignored), or nil for a pull.
    var settledOutcome: PullOutcome? {
        var o = PullOutcome(action: .ignored, name: file.name, size: file.size)
        switch decision {
        case .pull: return nil
        case .skip(let copy):
            o.action = .skipped
            o.localPath = copy.localPath
            o.sha256 = copy.sha256
        case .stillWriting(let why):
            o.action = .stillWriting
            o.message = why
        case .ignore(let why):
            o.message = why
        }
        return o
    }
}

/// Local failures while pulling.
public enum PullError: Error, CustomStringConvertible {
    case sizeChanged(name: String, expected: Int64, got: Int64)
    case folderBusy(name: String, folder: String)
    case stopped(reason: String)

    public var description: String {
        switch self {
        case .folderBusy(let name, let folder):
            return "another ceti is working in \(folder.printable) (pulling or processing \(name)); let it finish, then rerun"
        case .stopped(let reason):
            return "pull stopped: \(reason)"
        case .sizeChanged(let name, let expected, let got):
            return "\(name) changed size while it was pulled (\(expected) → \(got) bytes): it is still being written; rerun later"
        }
    }
}
