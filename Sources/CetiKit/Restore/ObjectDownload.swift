import Foundation

/// One object downloaded into a local file in ranged GETs, resumably: the file only ever holds a
/// prefix of the object (chunks are written in order), so a download stopped at any point —
/// even by kill -9 — continues from the file's size. The bytes are hashed as they are written
/// (a resumed file's prefix is read back once), and the whole must have the object's size and
/// SHA-256.
struct ObjectDownload: Sendable {
    let store: any ObjectStore
    let pool: BlockingPool
    /// Bytes per ranged GET, `window` of them in flight per object: bounded memory, and a resume
    /// loses at most the chunks in flight (a response is written once it is whole).
    static let chunk: Int64 = 2 << 20
    static let window = 4
    /// Bytes as they arrive, for the progress line and the summary.
    var received: (@Sendable (Int64) -> Void)? = nil

    enum Failure: Error, CustomStringConvertible {
        case missing(key: String)
        case shorter(key: String, got: Int64, expected: Int64)
        case corrupt(key: String, got: String, expected: String)

        var description: String {
            switch self {
            case .missing(let key): return "S3 holds no object under \(key.printable)"
            case .shorter(let key, let got, let expected):
                return "\(key.printable) holds \(ByteSize.format(got)) where the manifest says \(ByteSize.format(expected))"
            case .corrupt(let key, let got, let expected):
                return "\(key.printable) downloaded hashes to \(got) where the manifest says \(expected)"
            }
        }
    }

    /// Downloads `object` into `path` (continuing what it holds) and checks it; returns the bytes
    /// fetched now. A resumed file that does not check out is downloaded once more from the start.
    func fetch(_ object: Manifest.Object, bucket: String, into path: String) async throws -> Int64 {
        var fetched: Int64 = 0
        for attempt in 0..<2 {
            let file = try await pool.run { try Sink(path: path, size: object.size, fresh: attempt > 0) }
            let resumed = file.offset > 0
            do {
                fetched += try await fill(file, object: object, bucket: bucket)
                let sha = try await pool.run { try file.finish() }
                guard sha == object.sha256 else { throw Failure.corrupt(key: object.key, got: sha, expected: object.sha256) }
                return fetched
            } catch let e as Failure {
                file.close()
                guard case .corrupt = e else { throw e }
                // A resumed prefix may be what went wrong: once more from the start. Bytes that
                // were wrong from the start are no use to a rerun.
                if resumed { continue }
                unlink(fsPath(path))
                throw e
            } catch {
                file.close()
                throw error
            }
        }
        return fetched
    }

    /// Ranged GETs from the file's end to the object's, `window` at a time, written in order.
    private func fill(_ file: Sink, object: Manifest.Object, bucket: String) async throws -> Int64 {
        let start = file.offset
        try await withThrowingTaskGroup(of: (Int64, [UInt8]).self) { group in
            var next = start
            var ready: [Int64: [UInt8]] = [:]
            func request() {
                guard next < object.size else { return }
                let (offset, count) = (next, min(Self.chunk, object.size - next))
                next += count
                group.addTask {
                    do {
                        let bytes = try await store.getObjectRange(bucket: bucket, key: object.key, offset: offset, count: count)
                        guard bytes.count <= count else {
                            throw S3Error.service(
                                operation: "GetObject", key: object.key, status: 206, code: "",
                                message: "\(bytes.count) bytes for a range of \(count): the server ignored the range")
                        }
                        return (offset, bytes)
                    } catch let e as S3Error {
                        if case .service(_, _, 404, _, _) = e { throw Failure.missing(key: object.key) }
                        throw e
                    }
                }
            }
            for _ in 0..<Self.window { request() }
            while let (offset, bytes) = try await group.next() {
                ready[offset] = bytes
                while let bytes = ready.removeValue(forKey: file.offset) {
                    let expected = min(Self.chunk, object.size - file.offset)
                    try await pool.run { try file.append(bytes) }
                    received?(Int64(bytes.count))
                    guard Int64(bytes.count) == expected else {
                        throw Failure.shorter(key: object.key, got: file.offset, expected: object.size)
                    }
                    try Interrupt.check()
                    request()
                }
            }
        }
        return file.offset - start
    }

    /// The download file: opened (created, or truncated when it cannot be a prefix), its prefix
    /// hashed, then appended to and hashed on the pool's threads, one call at a time.
    final class Sink: @unchecked Sendable {
        let path: String
        private var fd: Int32
        private(set) var offset: Int64 = 0
        private var sha: Digest? = Digest(.sha256)

        init(path: String, size: Int64, fresh: Bool) throws {
            self.path = path
            fd = open(fsPath(path), O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw FileIOError.write(path: path, errno: errno) }
            var st = stat()
            fstat(fd, &st)
            if fresh || Int64(st.st_size) > size {
                guard ftruncate(fd, 0) == 0 else { throw FileIOError.write(path: path, errno: errno) }
            } else if st.st_size > 0 {
                var digest = Digest(.sha256)
                try FileHashes.hash(&digest, fd: fd, path: path, offset: 0, length: Int64(st.st_size))
                sha = Optional(consume digest)
                offset = Int64(st.st_size)
            }
        }

        deinit { close() }

        func append(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes {
                try FileIO.writeAll(fd, path, $0, at: offset)
                sha?.update($0)
            }
            offset += Int64(bytes.count)
        }

        /// The SHA-256 of all it holds. Not fsynced: it is checked again whole, and a rerun hashes
        /// what survived a crash before continuing it.
        func finish() throws -> String {
            close()
            return sha.take()?.finalize().hex ?? ""

        }

        func close() {
            if fd >= 0 { Foundation.close(fd) }
            fd = -1
        }
    }
}
