import Foundation

/// Compresses one file: `NAME.part` written, fsynced and verified, renamed, recorded in the
/// ledger, and only then the original removed. Blocking: run it on a thread of our own.
struct Compressor: Sendable {
    let options: CompressOptions
    let ledger: Ledger
    let gzipThreads: Int

    enum Kind: String { case flacFromRaw = "raw", flacFromWAV = "wav", gzip = "csv" }

    static func kind(of path: String) -> Kind? {
        let lower = path.lowercased()
        if lower.hasSuffix(".raw") { return .flacFromRaw }
        if lower.hasSuffix(".wav") { return .flacFromWAV }
        if lower.hasSuffix(".csv") { return .gzip }
        return nil
    }

    static func outputPath(_ path: String, _ kind: Kind) -> String {
        switch kind {
        case .flacFromRaw, .flacFromWAV: return String(path.dropLast(4)) + ".flac"
        case .gzip: return path + ".gz"
        }
    }

    func compress(_ path: String, kind: Kind) -> CompressOutcome {
        var outcome = CompressOutcome(action: .failed, input: path, output: Self.outputPath(path, kind),
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
    func produce(_ path: String, kind: Kind, outcome: inout CompressOutcome) throws -> DerivativeRecord? {
        let output = Self.outputPath(path, kind)
        if FileManager.default.fileExists(atPath: output) {
            return try settleExisting(path, output: output, outcome: &outcome)
        }
        if options.dryRun {
            outcome.action = .wouldCompress
            return nil
        }
        let record = try encode(path, kind: kind, output: output)
        outcome.outputSize = record.outputSize
        outcome.action = .compressed
        if !options.keep { try removeOriginal(path) ; outcome.originalRemoved = true }
        return record
    }

    /// The output exists: skip it if the ledger proves it is the verified output of this very
    /// input (then the original may go); anything else is left alone and reported.
    private func settleExisting(_ path: String, output: String, outcome: inout CompressOutcome) throws -> DerivativeRecord {
        guard let d = try ledger.derivative(outputPath: output), FileWalker.fingerprint(path: output)?.size == d.outputSize else {
            throw CompressError.outputExists(output: output)
        }
        outcome.action = .skipped
        outcome.outputSize = d.outputSize
        // A run stopped between recording and removing: the original is still here.
        guard !options.keep, !options.dryRun, FileManager.default.fileExists(atPath: path) else { return d }
        guard try FileHashes.sha256(path: path) == d.inputSHA256 else { throw CompressError.earlierVersion(input: path, output: output) }
        try removeOriginal(path)
        outcome.originalRemoved = true
        return d
    }

    private func encode(_ path: String, kind: Kind, output: String) throws -> DerivativeRecord {
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FileIOError.read(path: path, message: String(cString: strerror(errno))) }
        defer { close(input) }
        var st = stat()
        fstat(input, &st)
        let size = Int64(st.st_size)
        let part = output + ".part"
        let out = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard out >= 0 else { throw FileIOError.write(path: part, errno: errno) }
        var committed = false
        defer {
            close(out)
            if !committed { unlink(part) }
        }
        var inputSHA: [UInt8]
        var flacMD5: String?
        var parameters: String
        switch kind {
        case .flacFromRaw, .flacFromWAV:
            var format = options.raw
            var offset: Int64 = 0
            var length = size
            if kind == .flacFromWAV {
                let wav = try WAVHeader.parse(fd: input, path: path, fileSize: size)
                (format, offset, length) = (wav.format, wav.dataOffset, wav.dataLength)
            }
            let r = try FLACEncoder.encode(inputFD: input, inputPath: path, inputSize: size, pcmOffset: offset, pcmLength: length,
                                           format: format, level: options.flacLevel, outputFD: out, outputPath: part)
            inputSHA = r.inputSHA256
            flacMD5 = r.streamMD5.hex
            parameters = "\(format.flacFlags) -\(options.flacLevel)"
        case .gzip:
            inputSHA = try GzipWriter.compress(inputFD: input, inputPath: path, size: size, level: options.gzipLevel,
                                               outputFD: out, outputPath: part, threads: gzipThreads)
            parameters = "-\(options.gzipLevel)"
        }
        guard fsync(out) == 0 else { throw FileIOError.write(path: part, errno: errno) }
        if kind == .gzip {
            // Re-inflate with zlib: the same size and SHA-256 as the input, or it does not count.
            let (inflated, sha) = try GzipWriter.inflate(path: part)
            guard inflated == size, sha == inputSHA else {
                throw GzipWriter.GzipError.verify(path: part, message: "it inflates to other bytes than \(path)")
            }
        }
        guard FileWalker.fingerprint(path: path) == FileWalker.fingerprint(st) else {
            throw CompressError.inputChanged(input: path, output: output)
        }
        let outputSHA = try FileHashes.sha256(path: part)
        let outputSize = FileWalker.fingerprint(path: part)?.size ?? 0
        // Recorded before the rename: a run killed in between finds no output and encodes again,
        // where the other order would leave an output the ledger cannot vouch for.
        let record = DerivativeRecord(inputPath: path, inputSHA256: inputSHA.hex, inputSize: size, outputPath: output,
                                      outputSHA256: outputSHA, outputSize: outputSize, codec: kind == .gzip ? "gzip" : "flac",
                                      parameters: parameters, flacMD5: flacMD5, verifiedAt: Timestamp.now())
        try ledger.recordDerivative(record)
        guard rename(part, output) == 0 else { throw FileIOError.write(path: output, errno: errno) }
        committed = true
        FileHashes.syncDirectory((output as NSString).deletingLastPathComponent)
        return record
    }

    private func removeOriginal(_ path: String) throws {
        guard unlink(path) == 0 else { throw FileIOError.write(path: path, errno: errno) }
        FileHashes.syncDirectory((path as NSString).deletingLastPathComponent)
    }
}

enum CompressError: Error, CustomStringConvertible {
    case outputExists(output: String)
    case inputChanged(input: String, output: String)
    /// The output was made from other content at the same path: an earlier version of the input.
    case earlierVersion(input: String, output: String)

    var description: String {
        switch self {
        case .outputExists(let output):
            return "\(output) already exists and the ledger does not prove it is this file's verified output; both left untouched: move it away and rerun"
        case .inputChanged(let input, _):
            return "\(input) changed while it was compressed; it was kept: rerun when it is finished"
        case .earlierVersion(let input, let output):
            return "\(output) was made from an earlier version of \(input), which has changed since; both were kept: "
                + "move \(output) away (or rename \(input)) and rerun"
        }
    }
}
