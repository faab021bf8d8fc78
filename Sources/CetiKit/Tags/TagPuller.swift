import Foundation

/// Pulls one tag's data directory over one SSH session: verified host key, top-level regular
/// files only, resumable `.part` downloads hashed while they arrive, confirmed by the tag's own
/// sha256sum, recorded in the ledger. Blocking: run it on a thread of our own. Holds no mutable
/// state of its own (sessions live inside one `pull`), so tags can be pulled in parallel.
final class TagPuller: @unchecked Sendable {
    let options: PullOptions
    let ledger: Ledger
    let knownHosts: KnownHosts
    let console: Console
    let meter: ProgressMeter
    /// The bucket that cleaning must find each file's own object in (asked just before a delete).
    let objectCheck: ObjectCheck?
    /// Tags already being pulled in this process, by hostname: two targets that reach the same
    /// tag (its name and an address, or two addresses) pull it once.
    private let claims = ClaimRegistry()

    init(
        options: PullOptions, ledger: Ledger, knownHosts: KnownHosts, console: Console, meter: ProgressMeter,
        objectCheck: ObjectCheck? = nil
    ) {
        self.options = options
        self.ledger = ledger
        self.knownHosts = knownHosts
        self.console = console
        self.meter = meter
        self.objectCheck = objectCheck
    }

    /// Whale tags are named `wt-` and at least six lowercase hex (or alphanumeric) characters.
    static func isTagName(_ name: String) -> Bool {
        name.hasPrefix("wt-") && name.count >= 9
            && name.dropFirst(3).allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }

    /// Connects, checks the host key, logs in; returns the session and the tag's own hostname and
    /// clock. With `tagsOnly`, a host whose name is not a tag's is left before its key is pinned.
    func open(address: String, port: Int? = nil, expectedName: String?, tagsOnly: Bool = false) throws -> (
        SSHSession, name: String, now: Int64
    ) {
        let session = try SSHSession(host: address, port: port ?? options.port)
        let key = session.hostKey
        // Check what can be checked before the password is sent: a key pinned under a name.
        if let name = expectedName ?? knownHosts.name(forKey: key.base64) {
            try check(name, key: key, address: address)
        }
        try session.authenticate(options.login)
        let info = try session.exec("hostname; date +%s")
        let lines = String(decoding: info.stdout, as: UTF8.self).split(separator: "\n").map(String.init)
        guard info.status == 0, lines.count >= 2, let now = Int64(lines[1].trimmingCharacters(in: .whitespaces)) else {
            throw SSHError.remoteCommand(host: address, command: "hostname; date +%s", status: info.status, stderr: info.stderr)
        }
        let name = lines[0].trimmingCharacters(in: .whitespaces)
        // The name becomes a local folder and a ledger key: nothing that could climb out of --data-dir.
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", !name.hasPrefix(".") else {
            throw SSHError.protocolError(host: address, operation: "reading its hostname", message: "'\(name)' cannot name a folder")
        }
        if tagsOnly && !Self.isTagName(name) { throw DiscoveryError.notATag(address: address, name: name) }
        try check(name, key: key, address: address)
        return (session, name, now)
    }

    private func check(_ name: String, key: (type: String, base64: String, fingerprint: String), address: String) throws {
        switch knownHosts.verdict(name: name, type: key.type, key: key.base64) {
        case .trusted:
            return
        case .new:
            console.info("\(name) (\(address)): first contact, pinning host key \(key.fingerprint)")
            try knownHosts.pin(name: name, type: key.type, key: key.base64)
        case .changed(let pinned):
            guard options.acceptNewHostKey.contains(name) else {
                throw SSHError.hostKeyChanged(
                    name: name, address: address, pinned: pinned, presented: key.fingerprint,
                    knownHosts: knownHosts.path)
            }
            console.info("\(name) (\(address)): accepting its new host key \(key.fingerprint) (was \(pinned))")
            try knownHosts.pin(name: name, type: key.type, key: key.base64)
        }
    }

    func pull(_ target: TagTarget, hooks: PullHooks? = nil) -> TagPullReport {
        var report = TagPullReport(tag: target.name ?? target.address, address: target.address)
        // SIGINT/SIGTERM: no new tag is started.
        if Interrupt.isRequested { return report }
        do {
            let (session, name, now) = try open(address: target.address, port: target.port, expectedName: target.name)
            report.tag = name
            // The identity is the hostname whose host key matched the pinned one (checked in open).
            if let first = claims.claim(name, by: target.description) {
                report.duplicateOf = first
                return report
            }
            if options.stopCapture {
                // A session of the switch's own (same tag, same pinned key): it renews the tag's
                // restart timer and starts the recorder again even while this one is in a read.
                let (control, _, _) = try open(address: target.address, port: target.port, expectedName: name)
                let capture = try CaptureService.stop(control: control, graceSeconds: options.captureGraceSeconds, console: console)
                // Whatever happens next, the tag records again afterwards (the original tool never
                // restarted it, and tags went back to sea with the service off).
                defer {
                    if let problem = capture.restart() {
                        report.error = [report.error, problem].compactMap { $0 }.joined(separator: "; ")
                    }
                }
                try pullFiles(session: session, name: name, now: now, hooks: hooks, into: &report)
            } else {
                try pullFiles(session: session, name: name, now: now, hooks: hooks, into: &report)
            }
        } catch {
            // Keep a capture-restart problem, if any, next to the error that ended the pull.
            report.error = ["\(error)", report.error].compactMap { $0 }.joined(separator: "; ")
        }
        report.files.sort { $0.name < $1.name }
        return report
    }

    /// Deletes on the tag what the ledger proves safe (`ceti ingest --clean`, after its uploads),
    /// over a session of its own: the pull's may have idled out during hours of uploading.
    func clean(_ target: TagTarget) throws -> [CleanOutcome] {
        let (session, name, _) = try open(address: target.address, port: target.port, expectedName: target.name)
        let sftp = try SFTPClient(session: session)
        return try TagCleaner(ledger: ledger, require: options.require, dryRun: options.dryRun, s3: objectCheck)
            .clean(session: session, sftp: sftp, device: name, remoteDir: remoteDirectory)
    }

    /// In name form (`NameCodec`), as every remote path ceti keeps: `/data` is itself.
    private var remoteDirectory: String {
        NameCodec.encodePath(options.remoteDir.hasSuffix("/") ? String(options.remoteDir.dropLast()) : options.remoteDir)
    }

    private func pullFiles(
        session: SSHSession, name: String, now: Int64, hooks: PullHooks?,
        into report: inout TagPullReport
    ) throws {
        let sftp = try SFTPClient(session: session)
        let remoteDir = remoteDirectory
        // Local paths are kept in name form too (a tag file's name may not be UTF-8): `fsPath`
        // gives the bytes back at each system call.
        let localDir = NameCodec.encodePath(options.dataDir + "/" + name)
        var folderLock: FileLock?
        defer { withExtendedLifetime(folderLock) {} }
        if !options.dryRun {
            try FileManager.default.createDirectory(atPath: options.dataDir + "/" + name, withIntermediateDirectories: true)
            // One worker per device folder, across processes too: two pulls (or compressors) in one
            // folder could interleave the bytes of one file.
            guard let lock = try FileLock(directory: localDir) else { throw PullError.folderBusy(name: name, folder: localDir) }
            if let hooks { hooks.holdLock(lock) } else { folderLock = lock }
        }
        var received: [(outcome: PullOutcome, file: RemoteFile, sha: String, part: String)] = []
        let listing = try sftp.list(remoteDir)
        let regular = listing.filter(\.isRegular)
        meter.add(files: regular.count, bytes: regular.reduce(0) { $0 + $1.size })
        // Feeding ingest, smallest first: sensor files reach S3 within seconds, so the uplink is
        // busy while the first big recording is still being pulled and encoded.
        let order = hooks == nil ? listing : listing.sorted { ($0.size, $0.name) < ($1.size, $1.name) }
        for file in order {
            // SIGINT/SIGTERM: no new file; what arrived is confirmed and recorded below.
            if Interrupt.isRequested { break }
            var outcome = PullOutcome(action: .ignored, name: file.name, size: file.size)
            if !file.isRegular {
                outcome.message = file.isDirectory ? "folder" : "not a regular file"
            } else if file.mtime > now - options.settleSeconds {
                outcome.action = .stillWriting
                outcome.message = "modified \(max(0, now - file.mtime)) s ago: the tag may still be writing it; pull it later"
            } else if let copy = try ledger.copy(device: name, remotePath: remoteDir + "/" + file.name, size: file.size, mtime: file.mtime),
                hooks?.stillHeld(copy) ?? true
            {
                outcome.action = .skipped
                outcome.localPath = copy.localPath
                outcome.sha256 = copy.sha256
                hooks?.ready(copy, false)
            } else if options.dryRun {
                outcome.action = .wouldPull
            } else if let stop = hooks?.stopReason() {
                throw PullError.stopped(reason: stop)
            } else {
                hooks?.beforeDownload(file.size)
                do {
                    let (sha, part, bytes, resumed) = try download(sftp, remoteDir + "/" + file.name, file, into: localDir)
                    outcome.action = resumed ? .resumed : .pulled
                    outcome.bytesReceived = bytes
                    meter.fileFinished()
                    guard let hooks else {
                        received.append((outcome, file, sha, part))
                        continue
                    }
                    // Handed on at once, so compression and upload overlap the next download.
                    for (o, copy) in try confirm(
                        [(outcome, file, sha, part)], session: session, name: name,
                        remoteDir: remoteDir, localDir: localDir)
                    {
                        report.files.append(o)
                        if let copy { hooks.ready(copy, true) } else { hooks.abandoned(file.size) }
                    }
                    continue
                } catch {
                    hooks?.abandoned(file.size)
                    // Interrupted between two chunks: the .part stays for the next run to resume.
                    if error is Interrupted { break }
                    outcome.action = .failed
                    outcome.message = "\(error)"
                }
            }
            if file.isRegular {
                meter.fileFinished(skippedBytes: file.size, skipped: outcome.action != .failed, failed: outcome.action == .failed)
            }
            report.files.append(outcome)
        }
        report.files += try confirm(received, session: session, name: name, remoteDir: remoteDir, localDir: localDir).map(\.0)
        if options.clean && !Interrupt.isRequested {
            // A file that could not be pulled keeps itself, never the other files of the tag:
            // each one is deleted only on its own proof (a tag-wide error never gets here).
            let failed = Dictionary(report.files.filter { $0.action == .failed }.map { ($0.name, $0.message ?? "failed") }) { a, _ in a }
            report.cleaned = try TagCleaner(ledger: ledger, require: options.require, dryRun: options.dryRun, s3: objectCheck)
                .clean(session: session, sftp: sftp, device: name, remoteDir: remoteDir, failed: failed)
        }
    }

    /// Downloads into `.ceti-part-<hash of the name>` (`NameCodec.partialName`: a short name of
    /// ceti's own, so a 255-byte name fits and a tag's own `x.part` is never mistaken for one),
    /// continuing an earlier partial download (whose bytes are re-hashed, not re-sent). Returns
    /// the SHA-256 of the whole file.
    private func download(
        _ sftp: SFTPClient, _ remotePath: String, _ file: RemoteFile,
        into localDir: String
    ) throws -> (String, String, Int64, Bool) {
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
        if have > 0 { try FileHashes.hash(&sha, fd: fd, path: part, offset: 0, length: have) }
        var offset = have
        let bytes = try sftp.read(remotePath, from: have) { chunk in
            try FileIO.writeAll(fd, part, chunk, at: offset)
            offset += Int64(chunk.count)
            sha.update(chunk)
            meter.sent(Int64(chunk.count))
            // SIGINT/SIGTERM: stop between chunks; the bytes so far stay in the .part.
            try Interrupt.check()
        }
        guard offset == file.size else {
            throw PullError.sizeChanged(name: file.name, expected: file.size, got: offset)
        }
        guard fsync(fd) == 0 else { throw FileIOError.write(path: part, errno: errno) }
        return (sha.finalize().hex, part, bytes, have > 0)
    }

    /// Confirms downloads against the tag's sha256sum (one command per batch of names), then
    /// renames each `.part` to its final name and records it. A mismatch removes the copy.
    private func confirm(
        _ received: [(outcome: PullOutcome, file: RemoteFile, sha: String, part: String)],
        session: SSHSession, name: String, remoteDir: String, localDir: String
    ) throws -> [(PullOutcome, CopyRecord?)] {
        var remote: [String: String] = [:]
        if options.remoteVerify {
            for start in stride(from: 0, to: received.count, by: 200) {
                let batch = received[start..<min(received.count, start + 200)].map(\.file.name)
                remote.merge(try RemoteChecksums.sha256(of: batch, in: remoteDir, session: session)) { $1 }
            }
        }
        var out: [(PullOutcome, CopyRecord?)] = []
        for var r in received {
            let final = localDir + "/" + r.file.name
            if options.remoteVerify && remote[r.file.name] != r.sha {
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
                    || (try? FileHashes.sha256(path: final)) != r.sha
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
                device: name, remotePath: remoteDir + "/" + r.file.name, size: r.file.size,
                mtime: r.file.mtime, sha256: r.sha, localPath: final,
                remoteVerified: options.remoteVerify, verifiedAt: Timestamp.now())
            try ledger.recordCopy(copy)
            r.outcome.localPath = final
            r.outcome.sha256 = r.sha
            out.append((r.outcome, copy))
        }
        return out
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

/// How `ceti ingest` follows a pull file by file. Called on the tag's thread.
struct PullHooks: Sendable {
    /// Before a download starts; may block (bounded staging).
    var beforeDownload: @Sendable (_ size: Int64) -> Void
    /// A verified local copy is ready: pulled just now (true), or in an earlier run (false).
    var ready: @Sendable (CopyRecord, _ pulledNow: Bool) -> Void
    /// Whether a file pulled earlier is still here (or done with): if not, it is pulled again.
    var stillHeld: @Sendable (CopyRecord) -> Bool
    /// A download that `beforeDownload` announced produced no copy.
    var abandoned: @Sendable (_ size: Int64) -> Void
    /// Why no further download should start (a fatal S3 error), or nil to go on.
    var stopReason: @Sendable () -> String? = { nil }
    /// Takes over the lock of the device folder, to hold it while the files are processed.
    var holdLock: @Sendable (FileLock) -> Void = { _ in }
}
