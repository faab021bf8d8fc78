import Foundation

/// Uploads the files the ledger could not prove: dedups against what S3 holds, resumes
/// interrupted multipart uploads, and records every verified object in the ledger.
final class Uploader: Sendable {
    let options: UploadOptions
    let s3: any ObjectStore
    let ledger: Ledger
    let console: Console
    let meter: ProgressMeter
    let pool: BlockingPool
    let remote: RemoteIndex
    /// ingest: an S3 that cannot be reached is thrown (the file waits for the uplink), not a
    /// failed file.
    let throwsUnreachable: Bool

    init(
        options: UploadOptions, s3: any ObjectStore, ledger: Ledger, console: Console, meter: ProgressMeter, pool: BlockingPool,
        remote: RemoteIndex, throwsUnreachable: Bool = false
    ) {
        self.options = options
        self.s3 = s3
        self.ledger = ledger
        self.console = console
        self.meter = meter
        self.pool = pool
        self.remote = remote
        self.throwsUnreachable = throwsUnreachable
    }

    private var bucket: String { options.bucket }
    private var dryRun: Bool { options.dryRun }

    /// One file's fate. Only fatal S3 errors (credentials, bucket) escape: they stop the run
    /// (and, with `throwsUnreachable`, an S3 that cannot be reached).
    /// `hashed`: the file's hashes from the read that verified it (compress), used while its
    /// fingerprint and part size still match, so it is not read once more before it is sent.
    func process(_ file: LocalFile, key: String, plannedDate: String, hashed: HashedFile? = nil) async throws -> UploadOutcome {
        var outcome = UploadOutcome(
            action: .failed, path: file.path, device: file.device, key: key,
            size: file.fingerprint.size)
        do {
            outcome = try await upload(file, key: key, plannedDate: plannedDate, hashed: hashed, outcome: outcome)
        } catch let e as S3Error where e.isFatal || (throwsUnreachable && e.isUnreachable) {
            throw e
        } catch {
            outcome.action = .failed
            outcome.message = "\(error)"
            if !dryRun {
                try? ledger.recordFailure(
                    bucket: bucket, key: key, device: file.device, localPath: file.path,
                    message: outcome.message!)
            }
        }
        return outcome
    }

    private func upload(
        _ file: LocalFile, key: String, plannedDate: String, hashed: HashedFile?, outcome start: UploadOutcome
    ) async throws -> UploadOutcome {
        var outcome = start
        let size = file.fingerprint.size

        // 1. Read the file once: SHA-256 and the part MD5s that predict S3's ETag. (The ledger's
        //    proof, which needs no read, was checked when planning.)
        let inFlight = try ledger.upload(bucket: bucket, key: key)
        var layout = PartLayout(size: size, requestedPartSize: options.partSize)
        if let inFlight, inFlight.fingerprint.size == size {
            layout = PartLayout(size: size, exactPartSize: inFlight.partSize)
        }
        var hashes =
            if let hashed, hashed.fingerprint == file.fingerprint, hashed.hashes.layout == layout {
                hashed.hashes
            } else {
                try await hash(file, layout: layout)
            }
        outcome.sha256 = hashes.sha256.hex
        // A pulled copy or a compressed output is passed on only as the bytes ceti verified.
        if let recorded = try ledger.recordedContent(localPath: file.path), recorded.sha256 != hashes.sha256.hex {
            throw UploadError.changedSinceRecorded(
                path: file.path, origin: recorded.origin, recorded: recorded.sha256,
                now: hashes.sha256.hex)
        }
        if !dryRun {
            try ledger.saveFile(
                FileRecord(
                    path: file.path, fingerprint: file.fingerprint, sha256: hashes.sha256.hex,
                    plannedDate: plannedDate))
        }

        var resumable: UploadRecord?
        if let inFlight {
            if inFlight.sha256 == hashes.sha256.hex && inFlight.fingerprint.size == size {
                resumable = inFlight
            } else {
                // The file changed since that upload began: its parts are of other content.
                console.verbose("\(file.path) changed since its upload began; starting over")
                if !dryRun {
                    try? await s3.abortMultipartUpload(bucket: bucket, key: key, uploadID: inFlight.uploadID)
                    try ledger.dropUpload(uploadID: inFlight.uploadID)
                }
                let fresh = PartLayout(size: size, requestedPartSize: options.partSize)
                if fresh != layout {
                    layout = fresh
                    hashes = try await hash(file, layout: layout)
                }
            }
        }

        // 2. What does S3 hold under the key?
        var overwriting = false
        if let head = try await remote.head(key, needsMetadata: { $0.size == size && $0.etag != hashes.etag }) {
            if let settled = try await settle(file, key: key, head: head, hashes: hashes, resumable: resumable, outcome: outcome) {
                return settled
            }
            overwriting = true
        }

        if dryRun {
            outcome.action = overwriting ? .wouldOverwrite : resumable != nil ? .wouldResume : .wouldUpload
            return outcome
        }

        // 3. Send it: create-only unless replacing, so another uploader's object is never overwritten.
        let counter = ByteCounter(meter: meter)
        let resumed: Bool
        do {
            if layout.isMultipart {
                (outcome.etag, resumed) = try await multipart(
                    file, key: key, hashes: hashes, resuming: resumable,
                    createOnly: !overwriting, counter: counter)
            } else {
                outcome.etag = try await single(file, key: key, hashes: hashes, createOnly: !overwriting, counter: counter)
                resumed = false
            }
        } catch let e as S3Error where e.isPreconditionFailed && !overwriting {
            // Someone created the key since we looked (another laptop, or our own retried request
            // that had landed): what is there now decides.
            console.verbose("s3://\(bucket)/\(key.printable) was created by another writer meanwhile; comparing")
            if let id = try ledger.upload(bucket: bucket, key: key)?.uploadID {
                try? await s3.abortMultipartUpload(bucket: bucket, key: key, uploadID: id)
                try ledger.dropUpload(uploadID: id)
            }
            guard let head = try await s3.headObject(bucket: bucket, key: key),
                let settled = try await settle(file, key: key, head: head, hashes: hashes, resumable: nil, outcome: outcome)
            else {
                throw e
            }
            outcome = settled
            outcome.sentBytes = counter.value
            return outcome
        }
        outcome.sentBytes = counter.value
        outcome.action = overwriting ? .overwritten : resumed ? .resumed : .uploaded
        return outcome
    }

    /// S3 holds an object under the key. Identical content (the same ETag, or — where the ETag
    /// cannot tell, as for another part size — the same SHA-256 read back from S3) is present and
    /// recorded; anything else is a conflict. Returns nil only when it is to be overwritten.
    private func settle(
        _ file: LocalFile, key: String, head: ObjectHead, hashes: FileHashes, resumable: UploadRecord?,
        outcome start: UploadOutcome
    ) async throws -> UploadOutcome? {
        var outcome = start
        let size = file.fingerprint.size
        var same = head.size == size && head.etag == hashes.etag
        if !same, head.size == size, head.sha256 == hashes.sha256.hex {
            // Metadata alone proves nothing: read the object back.
            same = try await s3.sha256(bucket: bucket, key: key, size: size).hex == hashes.sha256.hex
        }
        if same {
            outcome.action = .present
            outcome.etag = head.etag
            if !dryRun {
                let partSize = head.etag.contains("-") ? hashes.layout.partSize : 0
                try ledger.recordVerified(
                    objectRecord(
                        file, key: key, sha256: hashes.sha256.hex, etag: head.etag,
                        partSize: partSize), closingUpload: resumable?.uploadID)
                if let resumable {
                    try? await s3.abortMultipartUpload(bucket: bucket, key: key, uploadID: resumable.uploadID)
                }
            }
            return outcome
        }
        guard options.overwrite else {
            outcome.action = .conflict
            outcome.etag = head.etag
            outcome.message =
                "s3://\(bucket)/\(key.printable) already holds different content (\(ByteSize.format(head.size)), ETag \(head.etag)); "
                + "the local file is \(ByteSize.format(size)), ETag \(hashes.etag). Left untouched: rename the file or rerun with --overwrite to replace it"
            if !dryRun {
                try ledger.recordFailure(
                    bucket: bucket, key: key, device: file.device, localPath: file.path,
                    message: "conflict: remote object differs")
            }
            return outcome
        }
        return nil
    }

    /// The upload step: one local file under its key → a verified object: sent (or resumed),
    /// found identical in S3, or skipped on the ledger's proof once S3 confirms it. Failures come
    /// back as the outcome; only fatal S3 errors are thrown.
    func save(_ file: LocalFile, hashed: HashedFile? = nil) async throws -> UploadOutcome {
        let (settled, work, newFiles) = try UploadPlanner.plan([file], options: options, ledger: ledger)
        if !dryRun { try ledger.insertNewFiles(newFiles) }
        if let s = settled.first { return s }
        let p = work[0]
        if let object = p.proof, try await isStillInS3(object) {
            return .skipped(file.path, device: file.device, proof: object, size: object.size)
        }
        return try await process(p.file, key: p.key, plannedDate: p.date, hashed: hashed)
    }

    /// Whether S3 still holds a verified object as the ledger recorded it (size and ETag). The
    /// ledger's memory alone proves nothing: an object it no longer matches is forgotten.
    func isStillInS3(_ object: ObjectRecord) async throws -> Bool {
        try isHeld(object, as: try await remote.head(object.key, needsMetadata: { _ in false }))
    }

    /// `isStillInS3` with S3's answer in hand (`head`: what the key holds, nil for nothing).
    func isHeld(_ object: ObjectRecord, as head: ObjectHead?) throws -> Bool {
        if let head, head.size == object.size, head.etag == object.etag { return true }
        if !dryRun { try ledger.forgetObject(bucket: object.bucket, key: object.key) }
        console.verbose("s3://\(bucket)/\(object.key.printable) is no longer in S3 as recorded; uploading it again")
        return false
    }

    private func hash(_ file: LocalFile, layout: PartLayout) async throws -> FileHashes {
        try await pool.run { try FileHashes.compute(path: file.path, layout: layout, fingerprint: file.fingerprint) }
    }

    private func objectRecord(_ file: LocalFile, key: String, sha256: String, etag: String, partSize: Int64) -> ObjectRecord {
        ObjectRecord(
            bucket: bucket, key: key, device: file.device, localPath: file.path, size: file.fingerprint.size,
            sha256: sha256, etag: etag, partSize: partSize, verifiedAt: Timestamp.now())
    }

    private func openFile(_ path: String) throws -> Int32 {
        let fd = open(fsPath(path), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw UploadError.unreadable(path: path, message: String(cString: strerror(errno))) }
        return fd
    }

    private func single(_ file: LocalFile, key: String, hashes: FileHashes, createOnly: Bool, counter: ByteCounter) async throws -> String {
        let fd = try openFile(file.path)
        defer { close(fd) }
        let etag = try await s3.putObject(
            bucket: bucket, key: key, body: .file(descriptor: fd, offset: 0, length: file.fingerprint.size),
            md5: hashes.partMD5s[0], sha256: hashes.sha256,
            metadata: [("sha256", hashes.sha256.hex)], createOnly: createOnly, onBytesSent: counter.add)
        guard etag == hashes.etag else { throw UploadError.etagMismatch(key: key, expected: hashes.etag, got: etag) }
        try ledger.recordVerified(objectRecord(file, key: key, sha256: hashes.sha256.hex, etag: etag, partSize: 0))
        return etag
    }

    private func multipart(
        _ file: LocalFile, key: String, hashes: FileHashes, resuming: UploadRecord?, createOnly: Bool,
        counter: ByteCounter
    ) async throws -> (String, Bool) {
        let layout = hashes.layout
        var done: [Int: String] = [:]
        var uploadID: String?
        if let resuming {
            do {
                // Keep exactly the parts the server holds with the content we would send now.
                let remote = try await s3.listParts(bucket: bucket, key: key, uploadID: resuming.uploadID)
                let known = Set(try ledger.parts(uploadID: resuming.uploadID).map(\.number))
                for p in remote where p.number >= 1 && p.number <= layout.partCount {
                    let md5 = hashes.partMD5s[p.number - 1].hex
                    let length = layout.range(ofPart: p.number).length
                    guard p.etag == md5, p.size < 0 || p.size == length else { continue }
                    done[p.number] = p.etag
                    if !known.contains(p.number) {
                        try ledger.recordPart(
                            uploadID: resuming.uploadID, PartRecord(number: p.number, size: length, md5: md5, etag: p.etag))
                    }
                }
                uploadID = resuming.uploadID
                console.verbose("resuming \(key): \(done.count) of \(layout.partCount) parts already on the server")
            } catch S3Error.noSuchUpload {
                console.verbose("the upload of \(key) is gone from the server; starting over")
                try ledger.dropUpload(uploadID: resuming.uploadID)
            }
        }
        let resumed = uploadID != nil
        if uploadID == nil {
            let id = try await s3.createMultipartUpload(bucket: bucket, key: key, metadata: [("sha256", hashes.sha256.hex)])
            try ledger.beginUpload(
                UploadRecord(
                    bucket: bucket, key: key, uploadID: id, device: file.device, localPath: file.path,
                    fingerprint: file.fingerprint, sha256: hashes.sha256.hex,
                    partSize: layout.partSize, startedAt: Timestamp.now()))
            uploadID = id
        }
        let id = uploadID!
        let missing = (1...layout.partCount).filter { done[$0] == nil }
        // Opened only when a part is left to send (a streamed file's parts are all there).
        let fd = missing.isEmpty ? -1 : try openFile(file.path)
        defer { if fd >= 0 { close(fd) } }

        // A sliding window of parts in flight; the connection pool bounds the total across files.
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            var next = missing.makeIterator()
            func addNext() {
                guard let number = next.next() else { return }
                group.addTask { [self] in
                    let (offset, length) = layout.range(ofPart: number)
                    // Hashed in the one read before the upload: bytes changed since then no longer
                    // match Content-MD5 and the signed SHA-256, and S3 refuses them.
                    let md5 = hashes.partMD5s[number - 1]
                    let etag = try await s3.uploadPart(
                        bucket: bucket, key: key, uploadID: id, number: number,
                        body: .file(descriptor: fd, offset: offset, length: length),
                        md5: md5, sha256: hashes.partSHA256s[number - 1], onBytesSent: counter.add)
                    guard etag == md5.hex else {
                        throw UploadError.etagMismatch(key: "\(key) part \(number)", expected: md5.hex, got: etag)
                    }
                    try ledger.recordPart(uploadID: id, PartRecord(number: number, size: length, md5: md5.hex, etag: etag))
                    return (number, etag)
                }
            }
            for _ in 0..<max(1, options.jobs) { addNext() }
            while let (number, etag) = try await group.next() {
                done[number] = etag
                addNext()
            }
        }

        let etag = try await s3.completeMultipartUpload(
            bucket: bucket, key: key, uploadID: id,
            parts: done.sorted { $0.key < $1.key }.map { (number: $0.key, etag: $0.value) }, createOnly: createOnly)
        guard etag == hashes.etag else { throw UploadError.etagMismatch(key: key, expected: hashes.etag, got: etag) }
        if createOnly {
            // Some servers (SeaweedFS 4.48, measured) check If-None-Match on CompleteMultipartUpload
            // without making it atomic: two completes at the same moment can both succeed, and the
            // later one replaces the earlier. So ask what the key holds now before claiming it.
            let now = try await s3.headObject(bucket: bucket, key: key)
            guard now?.etag == etag, now?.size == file.fingerprint.size else {
                throw S3Error.service(
                    operation: "CompleteMultipartUpload", key: key, status: 409, code: "ConditionalRequestConflict",
                    message: "another writer completed the same key at the same moment")
            }
        }
        try ledger.recordVerified(
            objectRecord(file, key: key, sha256: hashes.sha256.hex, etag: etag, partSize: layout.partSize),
            closingUpload: id)
        return (etag, resumed)
    }
}

/// Bytes sent for one file, also fed to the run's progress meter.
final class ByteCounter: Sendable {
    private let total = Locked<Int64>(0)
    private let meter: ProgressMeter

    init(meter: ProgressMeter) { self.meter = meter }

    var value: Int64 { total.value }

    var add: @Sendable (Int64) -> Void {
        { [total, meter] n in
            total.update { $0 += n }
            meter.sent(n)
        }
    }
}
