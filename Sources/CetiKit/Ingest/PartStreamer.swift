import Foundation

/// Sends a large file that goes up as it is (a FLAC the tag's firmware wrote) to S3 while it is
/// still being pulled: on a boat the uplink is the slowest link, and a file that must be whole
/// before its upload starts leaves it idle. The multipart upload carries the tag's own SHA-256
/// (asked before the transfer ends); each part goes once its bytes are on disk. Nothing here makes
/// an object: the pipeline's upload step, once it holds the verified copy, finds this upload in the
/// ledger, keeps the parts whose MD5 matches the copy, sends the rest and completes it
/// (`Uploader`), so the object is exactly the bytes the tag confirmed. Any problem just ends the
/// streaming; that step does what is left.
final class PartStreamer: Sendable {
    let options: UploadOptions
    let store: any ObjectStore
    let ledger: Ledger
    let window: TransferWindow
    let uplink: Uplink
    let pool: BlockingPool
    let console: Console
    let meter: ProgressMeter

    init(
        options: UploadOptions, store: any ObjectStore, ledger: Ledger, window: TransferWindow, uplink: Uplink, pool: BlockingPool,
        console: Console, meter: ProgressMeter
    ) {
        self.options = options
        self.store = store
        self.ledger = ledger
        self.window = window
        self.uplink = uplink
        self.pool = pool
        self.console = console
        self.meter = meter
    }

    /// Worth streaming: it goes up as it is (nothing to compress), in more than one part.
    static func streams(_ file: RemoteFile, partSize: Int64) -> Bool {
        Compressor.kind(of: file.name) == nil && !PlannedPull.isLog(file.name)
            && PartLayout(size: file.size, requestedPartSize: partSize).isMultipart
    }

    private var bucket: String { options.bucket }

    /// Streams `file` of `device` as it lands in `partial` (renamed to `final` once confirmed).
    /// `tagSHA256`: the tag's checksum of it (nil: nothing is streamed). Returns the hashes of the
    /// file's parts as sent, when every part went (the upload step then needs no read of its own
    /// to complete it); throws only a refusal.
    func send(
        _ file: RemoteFile, device: String, final: String, partial: String, tagSHA256: String?, landed: Watermark
    ) async throws -> FileHashes? {
        guard let sha = tagSHA256, let shaBytes = [UInt8](hex: sha), uplink.isOnline, !landed.isAbandoned else { return nil }
        let layout = PartLayout(size: file.size, requestedPartSize: options.partSize)
        let local = LocalFile(
            path: final, device: device, relativePath: (final as NSString).lastPathComponent,
            fingerprint: FileFingerprint(size: file.size, mtimeNanoseconds: file.mtime * 1_000_000_000, inode: 0))
        let key: String
        let id: String
        do {
            // The key the upload step will give the copy.
            key = options.key(for: local, plannedDate: try ledger.file(path: final)?.plannedDate)
            // An upload begun earlier is resumed by the upload step; an object already there is
            // settled by it. Neither needs a byte sent now.
            guard try ledger.upload(bucket: bucket, key: key) == nil,
                try await store.headObject(bucket: bucket, key: key) == nil
            else { return nil }
            id = try await store.createMultipartUpload(bucket: bucket, key: key, metadata: [("sha256", sha)])
            try ledger.beginUpload(
                UploadRecord(
                    bucket: bucket, key: key, uploadID: id, device: device, localPath: final, fingerprint: local.fingerprint,
                    sha256: sha, partSize: layout.partSize, startedAt: Timestamp.now()))
        } catch let e as S3Error where e.isFatal {
            throw e
        } catch {
            console.verbose("\(device)/\(file.name.printable): not streamed (\(error)); it is uploaded once pulled")
            return nil
        }
        console.verbose(
            "\(device)/\(file.name.printable): streaming \(layout.partCount) parts to s3://\(bucket)/\(key.printable) as they arrive")
        let counter = ByteCounter(meter: meter)
        let sent = Locked<[Int: (md5: [UInt8], sha256: [UInt8])]>([:])
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                var next = 1
                func addNext() {
                    guard next <= layout.partCount else { return }
                    let number = next
                    next += 1
                    group.addTask { [self] in
                        let hashes = try await sendPart(
                            number, of: layout, key: key, uploadID: id, final: final, partial: partial, landed: landed, counter: counter)
                        sent.update { $0[number] = hashes }
                    }
                }
                // Half the files' share of the window, as a large file's own upload would.
                for _ in 0..<max(1, options.jobs / 2) { addNext() }
                while try await group.next() != nil { addNext() }
            }
        } catch let e as S3Error where e.isFatal {
            throw e
        } catch {
            console.verbose("\(device)/\(file.name.printable): streaming stopped (\(error)); the rest goes once it is pulled")
            return nil
        }
        let parts = sent.value
        guard parts.count == layout.partCount else { return nil }
        let numbers = 1...layout.partCount
        return FileHashes(
            sha256: shaBytes, partMD5s: numbers.map { parts[$0]!.md5 }, partSHA256s: numbers.map { parts[$0]!.sha256 }, layout: layout)
    }

    private struct Stopped: Error, CustomStringConvertible {
        var description: String { "the pull of the file ended early, the run is stopping, or S3 cannot be reached" }
    }

    private func sendPart(
        _ number: Int, of layout: PartLayout, key: String, uploadID: String, final: String, partial: String, landed: Watermark,
        counter: ByteCounter
    ) async throws -> (md5: [UInt8], sha256: [UInt8]) {
        let (offset, length) = layout.range(ofPart: number)
        guard await landed.wait(for: offset + length) else { throw Stopped() }
        return try await window.run(size: length, rank: 1) { [self] in
            guard !landed.isAbandoned, !Interrupt.isRequested, uplink.isOnline else { throw Stopped() }
            // The part as it is on disk now (the .part, or the copy once confirmed and renamed).
            let (fd, path) = try openEither(partial, final)
            defer { close(fd) }
            let (md5, sha) = try await pool.run { try Self.hashes(fd: fd, path: path, offset: offset, length: length) }
            let etag = try await store.uploadPart(
                bucket: bucket, key: key, uploadID: uploadID, number: number,
                body: .file(descriptor: fd, offset: offset, length: length), md5: md5, sha256: sha, onBytesSent: counter.add)
            guard etag == md5.hex else { throw UploadError.etagMismatch(key: "\(key) part \(number)", expected: md5.hex, got: etag) }
            try ledger.recordPart(uploadID: uploadID, PartRecord(number: number, size: length, md5: md5.hex, etag: etag))
            return (md5, sha)
        }
    }

    private func openEither(_ paths: String...) throws -> (Int32, String) {
        for path in paths {
            let fd = open(fsPath(path), O_RDONLY | O_CLOEXEC)
            if fd >= 0 { return (fd, path) }
        }
        throw UploadError.unreadable(path: paths[0], message: String(cString: strerror(errno)))
    }

    private static func hashes(fd: Int32, path: String, offset: Int64, length: Int64) throws -> ([UInt8], [UInt8]) {
        var md5 = Digest(.md5)
        var sha = Digest(.sha256)
        try FileHashes.read(fd: fd, path: path, offset: offset, length: length) { chunk in
            md5.update(chunk)
            sha.update(chunk)
        }
        return (md5.finalize(), sha.finalize())
    }
}
