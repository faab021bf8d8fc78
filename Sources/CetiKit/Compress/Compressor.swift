import Foundation

/// Compresses one file: `NAME.part` written, fsynced and verified, renamed, recorded in the
/// ledger, and only then the original removed. Blocking: run it on a thread of our own.
struct Compressor: Sendable {
    let options: CompressOptions
    let ledger: Ledger
    let gzipThreads: Int
    /// The part size the output will be uploaded in: its hashes are made in the read that verifies it.
    var partSize: Int64 = 8 << 20
    var clock: any WallClock = SystemClock()
    /// Input bytes encoded so far, as they go (ingest's progress line).
    var progress: (@Sendable (Int64) -> Void)? = nil

    /// A verified derivative and, when it was made just now, the hashes of the read that verified
    /// it and where its sample layout came from.
    struct Derived: Sendable {
        var record: DerivativeRecord
        var hashed: HashedFile?
        var layout: RawLayout? = nil
        /// Measured while encoding, or recorded when it was made earlier; nil with QC off.
        var qc: FileQC? = nil
    }

    enum Kind: String { case flacFromRaw = "raw", flacFromBin = "bin", flacFromWAV = "wav", gzip = "csv" }

    /// Output paths claimed by the input writing them, so that two inputs (or two threads on one
    /// input) never write one `.part`: `ceti ingest` compresses from several threads at once.
    static let claims = ClaimRegistry()

    static func kind(of path: String) -> Kind? {
        let lower = path.lowercased()
        if lower.hasSuffix(".raw") { return .flacFromRaw }
        // Only a .bin whose name gives its layout; any other .bin goes up as it is.
        if lower.hasSuffix(".bin"), RawLayout.fromName(path) != nil { return .flacFromBin }
        if lower.hasSuffix(".wav") { return .flacFromWAV }
        if lower.hasSuffix(".csv") { return .gzip }
        return nil
    }

    static func outputPath(_ path: String, _ kind: Kind) -> String {
        switch kind {
        case .flacFromRaw, .flacFromBin, .flacFromWAV: return String(path.dropLast(4)) + ".flac"
        case .gzip: return path + ".gz"
        }
    }

    func compress(_ path: String, kind: Kind) -> CompressOutcome {
        var outcome = CompressOutcome(
            action: .failed, input: path, output: Self.outputPath(path, kind),
            codec: kind == .gzip ? "gzip" : "flac", inputSize: FileWalker.fingerprint(path: path)?.size ?? 0)
        do {
            _ = try produce(path, kind: kind, outcome: &outcome)
        } catch {
            outcome.action = .failed
            outcome.message = "\(error)"
        }
        return outcome
    }

    /// Compresses (or settles an output made earlier) and returns the verified derivative's
    /// record, nil on a dry run. Throws what went wrong, typed: `ceti ingest` acts on it.
    /// Safe to call from several threads at once: an output path is claimed by one input at a
    /// time in this process, and its `.part` is locked against other processes.
    func produce(_ path: String, kind: Kind, outcome: inout CompressOutcome) throws -> Derived? {
        let output = Self.outputPath(path, kind)
        if let owner = Self.claims.claim(output, by: path) {
            throw owner == path
                ? CompressError.busy(input: path, output: output)
                : CompressError.claimedByAnother(input: path, other: owner, output: output)
        }
        defer { Self.claims.release(output, by: path) }
        if access(fsPath(output), F_OK) == 0 {
            let record = try settleExisting(path, output: output, outcome: &outcome)
            return Derived(record: record, hashed: nil, qc: try ledger.qc(path: path, sha256: record.inputSHA256))
        }
        if options.dryRun {
            outcome.action = .wouldCompress
            return nil
        }
        let made = try encode(path, kind: kind, output: output)
        outcome.outputSize = made.record.outputSize
        outcome.action = .compressed
        if !options.keep { try removeOriginal(path); outcome.originalRemoved = true }
        return made
    }

    /// The output exists: skip it if the ledger proves it is the verified output of this very
    /// input (then the original may go, once the output read from disk again still has the
    /// recorded SHA-256); anything else is left alone and reported.
    private func settleExisting(_ path: String, output: String, outcome: inout CompressOutcome) throws -> DerivativeRecord {
        guard let d = try ledger.derivative(outputPath: output) else { throw CompressError.outputExists(output: output) }
        // Made from another file (a.raw beside a.wav): not this input's output, whatever its bytes.
        guard d.inputPath == path else { throw CompressError.outputOfAnother(input: path, other: d.inputPath, output: output) }
        guard FileWalker.fingerprint(path: output)?.size == d.outputSize else { throw CompressError.outputExists(output: output) }
        outcome.action = .skipped
        outcome.outputSize = d.outputSize
        // A run stopped between recording and removing: the original is still here.
        guard !options.keep, !options.dryRun, access(fsPath(path), F_OK) == 0 else { return d }
        guard try FileHashes.sha256(path: path) == d.inputSHA256 else { throw CompressError.earlierVersion(input: path, output: output) }
        if let pulled = try ledger.recordedContent(localPath: path), pulled.sha256 != d.inputSHA256 {
            throw CompressError.changedSincePulled(input: path, recorded: pulled.sha256, now: d.inputSHA256)
        }
        let now = try Self.sha256FromDisk(output)
        guard now == d.outputSHA256 else {
            throw CompressError.outputDiffers(input: path, output: output, recorded: d.outputSHA256, now: now)
        }
        try removeOriginal(path)
        outcome.originalRemoved = true
        return d
    }

    private func encode(_ path: String, kind: Kind, output: String) throws -> Derived {
        let input = open(fsPath(path), O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FileIOError.read(path: path, message: String(cString: strerror(errno))) }
        defer { close(input) }
        var st = stat()
        fstat(input, &st)
        let size = Int64(st.st_size)
        let part = output + ".part"
        // Not truncated before it is ours: another process may be writing it.
        let out = open(fsPath(part), O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard out >= 0 else { throw FileIOError.write(path: part, errno: errno) }
        var owned = false
        var committed = false
        defer {
            // Removed while still locked, so nobody else can take it over half-written.
            if owned && !committed { unlink(fsPath(part)) }
            close(out)
        }
        guard flock(out, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            if e == EWOULDBLOCK { throw CompressError.partBusy(input: path, part: part) }
            throw FileIOError.write(path: part, errno: e)
        }
        // The lock is on the file we opened: it must still be the one at that name (a process
        // that just finished renames its .part away, then unlocks).
        var mine = stat(), named = stat()
        guard fstat(out, &mine) == 0, stat(fsPath(part), &named) == 0, mine.st_ino == named.st_ino, mine.st_dev == named.st_dev else {
            throw CompressError.partBusy(input: path, part: part)
        }
        owned = true
        // Checked under the lock: an output another process finished meanwhile is never replaced.
        guard access(fsPath(output), F_OK) != 0 else { throw CompressError.outputAppeared(input: path, output: output) }
        guard ftruncate(out, 0) == 0 else { throw FileIOError.write(path: part, errno: errno) }
        var inputSHA: [UInt8]
        var flacMD5: String?
        var layout: RawLayout?
        var parameters: String
        var audioQC: AudioAnalyzer?
        var sensorQC: SensorAnalyzer?
        let name = (path as NSString).lastPathComponent
        switch kind {
        case .flacFromRaw, .flacFromBin, .flacFromWAV:
            layout = kind == .flacFromWAV ? nil : RawLayout.resolve(path, options: options.raw)
            var format = layout?.format ?? options.raw
            var offset: Int64 = 0
            var length = size
            var foreign: WAVHeader.Foreign?
            if kind == .flacFromWAV {
                let wav = try WAVHeader.parse(fd: input, path: path, fileSize: size)
                (format, offset, length, foreign) = (wav.format, wav.dataOffset, wav.dataLength, wav.foreign)
            }
            if let qc = options.qc, AudioAnalyzer.supports(format) {
                audioQC = AudioAnalyzer(format: format, expectedFrames: length / Int64(format.frameBytes), thresholds: qc.audio)
            }
            let r = try FLACEncoder.encode(
                inputFD: input, inputPath: path, inputSize: size, pcmOffset: offset, pcmLength: length,
                format: format, level: options.flacLevel, outputFD: out, outputPath: part, foreign: foreign, analyzer: audioQC,
                progress: progress)
            inputSHA = r.inputSHA256
            flacMD5 = r.streamMD5.hex
            parameters = "\(format.flacFlags) -\(options.flacLevel)"
        case .gzip:
            sensorQC = options.qc.map { SensorAnalyzer(name: name, thresholds: $0.sensor) }
            inputSHA = try GzipWriter.compress(
                inputFD: input, inputPath: path, size: size, level: options.gzipLevel,
                outputFD: out, outputPath: part, threads: gzipThreads, observe: sensorQC.map { s in { s.feed($0) } }, progress: progress)
            parameters = "-\(options.gzipLevel)"
        }
        // A staged copy is encoded only as it was pulled: the SHA-256 read now is the one recorded then.
        if let pulled = try ledger.recordedContent(localPath: path), pulled.sha256 != inputSHA.hex {
            throw CompressError.changedSincePulled(input: path, recorded: pulled.sha256, now: inputSHA.hex)
        }
        // The original's modification time, as gzip and flac keep it: the recording's own time.
        guard futimens(out, [st.st_atim, st.st_mtim]) == 0 else { throw FileIOError.write(path: part, errno: errno) }
        guard fsync(out) == 0 else { throw FileIOError.write(path: part, errno: errno) }
        guard FileWalker.fingerprint(path: path) == FileWalker.fingerprint(st) else {
            throw CompressError.inputChanged(input: path, output: output)
        }
        // The SHA-256 recorded is that of the bytes on the disk, read again after the fsync; the
        // same read gives the upload its part hashes and, for gzip, re-inflates it with zlib (the
        // same size and SHA-256 as the input, or it does not count).
        let inflater = kind == .gzip ? try GzipWriter.Inflater(path: part) : nil
        let hashed = try Self.hashFromDisk(part, partSize: partSize, observe: inflater.map { i in { i.feed($0) } })
        if let inflater {
            let (inflated, sha) = try inflater.finish()
            guard inflated == size, sha == inputSHA else {
                throw GzipWriter.GzipError.verify(path: part, message: "it inflates to other bytes than \(path)")
            }
        }
        let outputSHA = hashed.hashes.sha256.hex
        guard fstat(out, &mine) == 0 else { throw FileIOError.write(path: part, errno: errno) }
        let outputSize = Int64(mine.st_size)
        // Recorded before the rename: a run killed in between finds no output and encodes again,
        // where the other order would leave an output the ledger cannot vouch for.
        let record = DerivativeRecord(
            inputPath: path, inputSHA256: inputSHA.hex, inputSize: size, outputPath: output,
            outputSHA256: outputSHA, outputSize: outputSize, codec: kind == .gzip ? "gzip" : "flac",
            parameters: parameters, flacMD5: flacMD5, verifiedAt: Timestamp.iso8601(clock.now()))
        try ledger.recordDerivative(record)
        var qc: FileQC?
        if audioQC != nil || sensorQC != nil {
            qc = FileQC(name: name, audio: audioQC?.finish(), sensor: sensorQC?.finish())
            try ledger.recordQC(path: path, sha256: record.inputSHA256, qc!)
        }
        do {
            try FileIO.publish(part, as: output)
        } catch {
            try? ledger.forgetDerivative(outputPath: output, outputSHA256: outputSHA)
            if case FileIOError.exists = error { throw CompressError.outputAppeared(input: nil, output: output) }
            throw error
        }
        committed = true
        // Still locked: the final name is the very file hashed above.
        guard stat(fsPath(output), &named) == 0, named.st_ino == mine.st_ino, named.st_dev == mine.st_dev,
            Int64(named.st_size) == outputSize
        else {
            throw CompressError.outputAppeared(input: path, output: output)
        }
        return Derived(record: record, hashed: hashed, layout: layout, qc: qc)
    }

    /// A file as the disk holds it (its cached pages dropped first: they are clean after the
    /// fsync, so the bytes come back from the device, not from memory), hashed for its upload in
    /// parts of `partSize`, in one read that `observe` also sees.
    static func hashFromDisk(
        _ path: String, partSize: Int64, observe: ((UnsafeRawBufferPointer) -> Void)? = nil
    ) throws -> HashedFile {
        let fd = open(fsPath(path), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError.read(path: path, message: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileIOError.read(path: path, message: String(cString: strerror(errno))) }
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        let fingerprint = FileWalker.fingerprint(st)
        let layout = PartLayout(size: fingerprint.size, requestedPartSize: partSize)
        let hashes = try FileHashes.compute(fd: fd, path: path, layout: layout, fingerprint: fingerprint, observe: observe)
        return HashedFile(fingerprint: fingerprint, hashes: hashes)
    }

    /// SHA-256 (hex) of a file as the disk holds it: its cached pages dropped first (they are
    /// clean after the fsync), so the bytes are read back from the device, not from memory.
    static func sha256FromDisk(_ path: String) throws -> String {
        try hashFromDisk(path, partSize: .max).hashes.sha256.hex
    }

    private func removeOriginal(_ path: String) throws {
        guard unlink(fsPath(path)) == 0 else { throw FileIOError.write(path: path, errno: errno) }
        FileHashes.syncDirectory((path as NSString).deletingLastPathComponent)
    }
}

enum CompressError: Error, CustomStringConvertible {
    case outputExists(output: String)
    case inputChanged(input: String, output: String)
    /// The output was made from other content at the same path: an earlier version of the input.
    case earlierVersion(input: String, output: String)
    /// Two inputs (a.raw and a.wav, a.raw and a.RAW) map to one output.
    case collision(inputs: [String], output: String)
    /// The output is being written from another input by this process.
    case claimedByAnother(input: String, other: String, output: String)
    /// The output exists and the ledger records it as made from another input.
    case outputOfAnother(input: String, other: String, output: String)
    /// This input is being compressed by another thread of this process.
    case busy(input: String, output: String)
    /// Another process holds the lock on the output's `.part`.
    case partBusy(input: String, part: String)
    /// The output appeared while this input was being compressed.
    case outputAppeared(input: String?, output: String)
    /// A staged copy whose bytes differ from those its pull recorded.
    case changedSincePulled(input: String, recorded: String, now: String)
    /// The recorded output no longer has the SHA-256 recorded for it.
    case outputDiffers(input: String, output: String, recorded: String, now: String)

    var description: String {
        switch self {
        case .outputExists(let output):
            return
                "\(output) already exists and the ledger does not prove it is this file's verified output; both left untouched: move it away and rerun"
        case .inputChanged(let input, _):
            return "\(input) changed while it was compressed; it was kept: rerun when it is finished"
        case .earlierVersion(let input, let output):
            return "\(output) was made from an earlier version of \(input), which has changed since; both were kept: "
                + "move \(output) away (or rename \(input)) and rerun"
        case .collision(let inputs, let output):
            return "\(inputs.joined(separator: " and ")) both compress to \(output); "
                + "\(inputs.count == 2 ? "both were" : "all were") kept and nothing was written for them: rename one and rerun"
        case .claimedByAnother(let input, let other, let output):
            return "\(other) and \(input) both compress to \(output); \(input) was kept and nothing was written for it: "
                + "rename one and rerun"
        case .outputOfAnother(let input, let other, let output):
            return "\(output) is the recorded output of \(other), not of \(input): both compress to that name; "
                + "\(input) was kept and nothing was written for it: rename it and rerun"
        case .busy(let input, let output):
            return "\(input) is already being compressed to \(output) by this process; it was kept"
        case .partBusy(let input, let part):
            return "\(part) is being written by another process (another ceti compress or ingest?); \(input) was kept: "
                + "rerun when that one has finished"
        case .outputAppeared(let input, let output):
            return "\(output) appeared while \(input ?? "its input") was being compressed (another process?); nothing was "
                + "overwritten and the input was kept: rerun"
        case .changedSincePulled(let input, let recorded, let now):
            return "\(input) changed since it was pulled: SHA-256 recorded \(recorded), now \(now); kept, output discarded"
        case .outputDiffers(let input, let output, let recorded, let now):
            return "\(output) no longer has the SHA-256 recorded for it (recorded \(recorded), now \(now)); \(input) was kept: "
                + "move \(output) away and rerun"
        }
    }
}
