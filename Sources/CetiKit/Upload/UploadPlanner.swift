/// The planning step of uploads: a key for every file, decided from the ledger in one read
/// transaction, and S3's word on what the ledger already proves.
enum UploadPlanner {
    /// Asks S3 (a few requests at a time; listed folders need none) whether each proven file's
    /// object is still there as recorded. Keeps the order of `planned`.
    static func confirmProofs(_ planned: [PlannedFile], uploader: Uploader, jobs: Int) async throws -> [(PlannedFile, Bool)] {
        var held = [Bool](repeating: false, count: planned.count)
        // Keys in a listed folder are answered at once; the others need a HEAD each.
        var asking: [Int] = []
        for (i, p) in planned.enumerated() {
            guard let object = p.proof else { continue }
            if let listed = uploader.remote.listedHead(object.key) {
                held[i] = try uploader.isHeld(object, as: listed)
            } else {
                asking.append(i)
            }
        }
        try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            var next = asking.makeIterator()
            func addNext() {
                guard let i = next.next(), let object = planned[i].proof else { return }
                group.addTask { (i, try await uploader.isStillInS3(object)) }
            }
            for _ in 0..<max(1, jobs) { addNext() }
            while let (i, ok) = try await group.next() {
                held[i] = ok
                addNext()
            }
        }
        return Array(zip(planned, held))
    }

    /// A file with its key, and the verified object the ledger holds for it (to be confirmed in S3).
    typealias PlannedFile = (file: LocalFile, key: String, date: String, proof: ObjectRecord?)

    /// Gives every file its key. {date} is the day a file was first planned, kept so a resume on a
    /// later day finds the same key. Duplicate keys are settled here; a file the ledger proves
    /// (unchanged since hashed, its object verified) carries that proof, so it needs no read,
    /// only S3's word that the object is still there.
    static func plan(_ files: [LocalFile], options: UploadOptions, ledger: Ledger) throws
        -> (settled: [UploadOutcome], work: [PlannedFile], newFiles: [FileRecord])
    {
        let today = Timestamp.utcDate()
        var settled: [UploadOutcome] = []
        var work: [PlannedFile] = []
        var newFiles: [FileRecord] = []
        var owners: [String: String] = [:]
        let runs = Manifest.folder(prefix: options.prefix, run: "", device: "")
        try ledger.reading {
            for file in files {
                let record = try ledger.file(path: file.path)
                let date = record?.plannedDate ?? today
                if record == nil {
                    newFiles.append(FileRecord(path: file.path, fingerprint: file.fingerprint, sha256: nil, plannedDate: today))
                }
                let key = options.key(for: file, plannedDate: date)
                // Keys of files never land among the runs' manifests.
                if key.hasPrefix(runs) {
                    settled.append(
                        UploadOutcome(
                            action: .failed, path: file.path, device: file.device, key: key, size: file.fingerprint.size,
                            message: UploadError.keyInRunsFolder(key: key).description))
                    continue
                }
                if let other = owners.updateValue(file.path, forKey: key) {
                    owners[key] = other
                    var outcome = UploadOutcome(
                        action: .failed, path: file.path, device: file.device, key: key,
                        size: file.fingerprint.size)
                    outcome.message = UploadError.duplicateKey(key: key, other: other).description
                    settled.append(outcome)
                    continue
                }
                let proof = try record.flatMap {
                    try ledger.proof(record: $0, fingerprint: file.fingerprint, bucket: options.bucket, key: key)
                }
                work.append((file, key, date, proof))
            }
        }
        return (settled, work, newFiles)
    }
}
