import Foundation

/// The restore step: one manifest entry back to the original the device wrote, in a folder. The
/// object is downloaded (resumably) into `.ceti-restore-<id>.download`, turned back into the
/// original (FLAC decoded to the recorded raw layout, or to the WAV whose header it keeps; gzip
/// inflated; anything else as it is) in
/// `.ceti-restore-<id>.out`, and given its name and mtime only when its size and SHA-256 are
/// the manifest's. A file already in the folder is never overwritten: with the manifest's size
/// and SHA-256 it counts as restored, else it is reported.
struct Restorer: Sendable {
    let download: ObjectDownload
    /// Downloads at once (fewer than files at once): each gets a large share of the link, so files
    /// land one after another and each is decoded while the next downloads.
    let downloads: AsyncLimiter
    let pool: BlockingPool
    let bucket: String
    /// Absolute, in name form like the entries' names.
    let directory: String
    let keepDerivatives: Bool

    enum Outcome: Sendable {
        case restored(fetched: Int64)
        case alreadyThere
    }

    enum RestoreError: Error, CustomStringConvertible {
        case occupied(path: String)
        case mismatch(name: String, what: String, size: Int64, sha256: String, expected: Int64, expectedSHA256: String)
        case codec(name: String, codec: String)

        var description: String {
            switch self {
            case .occupied(let path):
                return "\(path.printable) exists and is not the manifest's file (size or SHA-256 differ); not overwritten: "
                    + "move it away and rerun"
            case .mismatch(let name, let what, let size, let sha, let expected, let expectedSHA):
                return "\(name.printable): \(what) gives \(ByteSize.format(size)), SHA-256 \(sha); the manifest says "
                    + "\(ByteSize.format(expected)), \(expectedSHA): not restored"
            case .codec(let name, let codec):
                return "\(name.printable): its object is \(codec), which this ceti cannot decode: update ceti"
            }
        }
    }

    /// The raw layout a FLAC of raw PCM is decoded to, and a note when the manifest did not record it.
    static func layout(_ d: Manifest.Derivative) -> (format: RawFormat, note: String?) {
        if let l = d.layout {
            return (
                RawFormat(
                    channels: l.channels, bitsPerSample: l.bitsPerSample, sampleRate: l.sampleRate, bigEndian: l.endian == "big",
                    signed: l.signed), nil
            )
        }
        // Before layouts had their own field, the encoder's flags held it.
        if let f = RawFormat(flacFlags: d.parameters) { return (f, nil) }
        return (.tag, "no raw layout recorded: decoded as the tag's default (\(RawFormat.tag.flacFlags))")
    }

    /// The entry's temporary files: one id per object key.
    func temporary(_ entry: Manifest.Entry) -> String {
        directory + "/.ceti-restore-" + Digest.sha256(Array(entry.object.key.utf8)).hex.prefix(16)
    }

    func restore(_ entry: Manifest.Entry) async throws -> Outcome {
        let temp = temporary(entry)
        if try await isThere(entry) {
            unlink(fsPath(temp + ".download"))
            unlink(fsPath(temp + ".out"))
            return .alreadyThere
        }
        if entry.name.contains("/") {
            let folder = ((directory + "/" + entry.name) as NSString).deletingLastPathComponent
            guard mkdirs(folder) else { throw FileIOError.write(path: folder, errno: errno) }
        }
        let fetched = try await downloads.run { try await download.fetch(entry.object, bucket: bucket, into: temp + ".download") }
        try Interrupt.check()
        try await pool.run { [self] in try decode(entry, from: temp + ".download", into: temp + ".out", final: directory + "/" + entry.name)
        }
        return .restored(fetched: fetched)
    }

    /// True when the folder holds the original already, false when the name is free; `occupied`
    /// when another file has it.
    func isThere(_ entry: Manifest.Entry) async throws -> Bool {
        let final = directory + "/" + entry.name
        guard FileWalker.fingerprint(path: final) != nil else { return false }
        try await pool.run {
            guard FileWalker.fingerprint(path: final)?.size == entry.size, try FileHashes.sha256(path: final) == entry.sha256 else {
                throw RestoreError.occupied(path: final)
            }
        }
        return true
    }

    /// From the downloaded object to the original under its name (blocking).
    private func decode(_ entry: Manifest.Entry, from downloaded: String, into out: String, final: String) throws {
        guard let d = entry.derivative else {
            // Uploaded as it was: the object (checked against its SHA-256) is the original.
            try check(entry, what: "the object", size: entry.object.size, sha256: entry.object.sha256)
            // On the disk before it has its name, as a decoded original is.
            let fd = open(fsPath(downloaded), O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw FileIOError.write(path: downloaded, errno: errno) }
            defer { close(fd) }
            guard fsync(fd) == 0 else { throw FileIOError.write(path: downloaded, errno: errno) }
            try Self.setMTime(downloaded, entry.mtime)
            try publish(downloaded, as: final)
            return
        }
        let input = open(fsPath(downloaded), O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FileIOError.read(path: downloaded, message: String(cString: strerror(errno))) }
        defer { close(input) }
        let output = open(fsPath(out), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard output >= 0 else { throw FileIOError.write(path: out, errno: errno) }
        defer { close(output) }
        let (size, sha): (Int64, [UInt8])
        switch d.codec {
        case "flac" where entry.name.lowercased().hasSuffix(".wav"):
            // The WAV's own header and chunks, kept in the FLAC, around its audio.
            let r = try FLACDecoder.decodeWAV(inputFD: input, inputPath: downloaded, outputFD: output, outputPath: out)
            (size, sha) = (r.bytes, r.sha256)
        case "flac":
            let r = try FLACDecoder.decode(
                inputFD: input, inputPath: downloaded, format: Self.layout(d).format, outputFD: output, outputPath: out)
            (size, sha) = (r.bytes, r.sha256)
        case "gzip":
            let inflater = try GzipWriter.Inflater(path: downloaded) { try FileIO.writeAll(output, out, $0) }
            try FileHashes.read(fd: input, path: downloaded, offset: 0, length: entry.object.size) { inflater.feed($0) }
            (size, sha) = try inflater.finish()
        default:
            throw RestoreError.codec(name: entry.name, codec: d.codec)
        }
        try check(entry, what: "decoding its \(d.codec)", size: size, sha256: sha.hex)
        guard fsync(output) == 0 else { throw FileIOError.write(path: out, errno: errno) }
        try Self.setMTime(out, entry.mtime)
        try publish(out, as: final)
        if keepDerivatives {
            do { try publish(downloaded, as: directory + "/" + d.name) } catch FileIOError.exists { unlink(fsPath(downloaded)) }
        } else {
            unlink(fsPath(downloaded))
        }
    }

    private func check(_ entry: Manifest.Entry, what: String, size: Int64, sha256: String) throws {
        guard size == entry.size, sha256 == entry.sha256 else {
            throw RestoreError.mismatch(
                name: entry.name, what: what, size: size, sha256: sha256, expected: entry.size, expectedSHA256: entry.sha256)
        }
    }

    private func publish(_ path: String, as final: String) throws {
        do { try FileIO.publish(path, as: final) } catch FileIOError.exists { throw RestoreError.occupied(path: final) }
    }

    /// The device's modification time (seconds), as the tag had it (and as the access time).
    static func setMTime(_ path: String, _ seconds: Int64) throws {
        let times = [timespec(tv_sec: Int(seconds), tv_nsec: 0), timespec(tv_sec: Int(seconds), tv_nsec: 0)]
        guard utimensat(AT_FDCWD, fsPath(path), times, 0) == 0 else { throw FileIOError.write(path: path, errno: errno) }
    }

    /// `mkdir -p` of a folder in name form.
    private func mkdirs(_ folder: String) -> Bool {
        FileManager.default.fileExists(atPath: String(decoding: NameCodec.decodePath(folder), as: UTF8.self))
            || (try? FileManager.default.createDirectory(
                atPath: String(decoding: NameCodec.decodePath(folder), as: UTF8.self), withIntermediateDirectories: true)) != nil
    }
}
