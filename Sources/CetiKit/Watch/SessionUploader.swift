import Foundation

/// The upload step of a complete session: its files (compressed first when the profile says so:
/// FLAC/gzip, the originals removed only with their output's proof, as `ceti compress` does)
/// → verified objects → this run's `manifest.json`, then `_COMPLETE`, under
/// `{prefix}/_runs/<run id>/<session>/`. The same steps as ingest: `Compressor.produce`,
/// `Uploader.save`, `ManifestWriter`.
struct SessionUploader: Sendable {
    let ledger: Ledger
    let uploader: Uploader
    let manifests: ManifestWriter
    /// nil: the profile does not compress.
    let compressor: Compressor?
    let pool: BlockingPool
    /// This machine's name: the manifest's `host`.
    let host: String
    let jobs: Int
    let console: Console

    struct Uploaded: Sendable {
        var manifest: String?
        var files: Int
        /// The originals' bytes the manifest lists.
        var bytes: Int64
    }

    enum SessionError: Error, CustomStringConvertible {
        case unreadable([String])
        case failed(session: String, problems: [String])

        var description: String {
            switch self {
            case .unreadable(let what): return what.joined(separator: "; ") + "; the session waits until it can be read whole"
            case .failed(let session, let problems):
                return "\(session.printable): \(problems.count) file(s) not uploaded: " + problems.joined(separator: "; ")
            }
        }

        var problems: [String] {
            switch self {
            case .unreadable(let what): return what
            case .failed(_, let problems): return problems
            }
        }
    }

    /// One file of the session as the manifest lists it, and the local file that goes up for it.
    private struct Item: Sendable {
        var name: String
        var original: LocalFile
        var sha256: String?
        var derivative: Compressor.Derived?
        var upload: LocalFile
        var note: String?
    }

    func upload(_ session: SessionSnapshot, run: IngestRunRecord) async throws -> Uploaded {
        guard session.unreadable.isEmpty else { throw SessionError.unreadable(session.unreadable) }
        var problems: [String] = []
        var items: [Item] = []
        for file in session.files {
            do {
                items.append(try await prepare(file))
            } catch {
                problems.append("\(file.relativePath.printable): \(error)")
            }
        }
        let entries = try await withThrowingTaskGroup(of: (Item, UploadOutcome).self) { group in
            var next = items.makeIterator()
            func add() {
                guard let item = next.next() else { return }
                group.addTask { (item, try await uploader.save(item.upload, hashed: item.derivative?.hashed)) }
            }
            for _ in 0..<max(1, jobs) { add() }
            var entries: [Manifest.Entry] = []
            while let (item, outcome) = try await group.next() {
                add()
                guard !outcome.isFailure, let etag = outcome.etag, let sha = outcome.sha256 else {
                    problems.append("\(item.name.printable): \(outcome.message ?? "upload failed")")
                    continue
                }
                entries.append(entry(item, object: Manifest.Object(key: outcome.key, size: outcome.size, sha256: sha, etag: etag)))
            }
            return entries
        }
        guard problems.isEmpty else { throw SessionError.failed(session: session.name, problems: problems.sorted()) }
        for e in entries {
            _ = try manifests.list(e, run: run, device: session.name, host: host)
        }
        // nil: every file is listed already by an earlier run's complete manifest (a file was only
        // removed since), so this run has nothing of its own to list.
        let manifest = try await manifests.complete(run: run, device: session.name, host: host)
        return Uploaded(manifest: manifest, files: entries.count, bytes: entries.reduce(0) { $0 + $1.size })
    }

    /// Compresses the file when the profile says so and it is of a kind that is (or finds the
    /// FLAC/gzip an earlier attempt made of it, its original already gone).
    private func prepare(_ file: LocalFile) async throws -> Item {
        var item = Item(name: file.relativePath, original: file, upload: file)
        if let made = try ledger.derivative(outputPath: file.path), made.inputPath != file.path,
            FileWalker.fingerprint(path: made.inputPath) == nil, made.outputSize == file.fingerprint.size
        {
            // Compressed by an earlier attempt: listed under its original's name and content
            // (the output carries the original's mtime).
            item.name = file.sibling(made.inputPath).relativePath
            item.derivative = Compressor.Derived(
                record: made, hashed: nil, qc: try ledger.qc(path: made.inputPath, sha256: made.inputSHA256))
            item.original.fingerprint.size = made.inputSize
            item.sha256 = made.inputSHA256
            return item
        }
        guard let compressor, let kind = Compressor.kind(of: file.path) else { return item }
        do {
            let made = try await pool.run {
                var outcome = CompressOutcome(action: .failed, input: file.path, output: "", codec: "", inputSize: 0)
                return try compressor.produce(file.path, kind: kind, outcome: &outcome)
            }
            guard let made else { return item }
            guard let output = FileWalker.fingerprint(path: made.record.outputPath) else {
                throw FileIOError.read(path: made.record.outputPath, message: "gone after it was written")
            }
            item.derivative = made
            item.sha256 = made.record.inputSHA256
            item.upload = file.sibling(made.record.outputPath, fingerprint: output)
        } catch let e as CompressError {
            throw e
        } catch {
            // Audio that cannot be encoded (a cut-off raw, a WAV ceti cannot read whole) goes up as it is.
            item.note = "\(error)"
            console.info("\(file.device.printable)/\(file.relativePath.printable): not compressed (\(error)); uploaded as it is")
        }
        return item
    }

    private func entry(_ item: Item, object: Manifest.Object) -> Manifest.Entry {
        Manifest.Entry(
            name: item.name, remotePath: item.original.path, size: item.original.fingerprint.size,
            mtime: item.original.fingerprint.mtimeNanoseconds / 1_000_000_000, sha256: item.sha256 ?? object.sha256,
            derivative: item.derivative.map { made in
                let d = made.record
                return Manifest.Derivative(
                    name: (d.outputPath as NSString).lastPathComponent, size: d.outputSize, sha256: d.outputSHA256, codec: d.codec,
                    parameters: d.parameters, flacMd5: d.flacMD5,
                    layout: made.layout.map { Manifest.Layout($0.format, from: $0.source) }
                        ?? (d.codec == "flac" && !d.inputPath.lowercased().hasSuffix(".wav")
                            ? RawFormat(flacFlags: d.parameters).map { Manifest.Layout($0, from: nil) } : nil))
            },
            object: object, note: item.note, qc: item.derivative?.qc.map(manifests.judge.judge))
    }
}
