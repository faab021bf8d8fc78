import Foundation

/// A file's hashes with the fingerprint it had when they were made: they stand for the file as
/// long as the fingerprint does (the compressed output handed from compress to upload).
public struct HashedFile: Sendable, Equatable {
    public var fingerprint: FileFingerprint
    public var hashes: FileHashes
}

/// What one read of a file yields: its SHA-256, and the MD5 and SHA-256 of each part of its layout
/// (Content-MD5 and the signed payload hash of each request, so no part is read twice to send it).
public struct FileHashes: Sendable, Equatable {
    public var sha256: [UInt8]
    public var partMD5s: [[UInt8]]
    public var partSHA256s: [[UInt8]]
    public var layout: PartLayout

    public var etag: String { layout.etag(partMD5s: partMD5s) }

    public enum HashError: Error, CustomStringConvertible {
        case changedWhileReading(path: String)
        public var description: String {
            switch self {
            case .changedWhileReading(let p):
                return "\(p) changed while it was being read; it is still being written — rerun when it is finished"
            }
        }
    }

    static let chunk = 1 << 20

    /// Reads the file once (blocking: call it on a pool thread).
    public static func compute(path: String, layout: PartLayout, fingerprint: FileFingerprint) throws -> FileHashes {
        let fd = open(fsPath(path), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError.read(path: path, message: String(cString: strerror(errno))) }
        defer { close(fd) }
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        return try compute(fd: fd, path: path, layout: layout, fingerprint: fingerprint)
    }

    /// From an open file, in one read; `observe` sees every byte in order on the calling thread
    /// (a gzip check riding on the read that hashes the file).
    static func compute(
        fd: Int32, path: String, layout: PartLayout, fingerprint: FileFingerprint,
        observe: ((UnsafeRawBufferPointer) -> Void)? = nil
    ) throws -> FileHashes {
        if layout.isMultipart && layout.size >= 64 << 20 {
            return try computeOnTwoThreads(fd: fd, path: path, layout: layout, fingerprint: fingerprint, observe: observe)
        }
        var sha = Digest(.sha256)
        var md5s: [[UInt8]] = []
        var shas: [[UInt8]] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        for part in 1...layout.partCount {
            let (offset, length) = layout.range(ofPart: part)
            var md5 = Digest(.md5)
            var partSHA = Digest(.sha256)
            try read(fd: fd, path: path, offset: offset, length: length, buffer: buffer) { bytes in
                sha.update(bytes)
                md5.update(bytes)
                if layout.isMultipart { partSHA.update(bytes) }
                observe?(bytes)
            }
            md5s.append(md5.finalize())
            shas.append(layout.isMultipart ? partSHA.finalize() : [])
        }
        guard FileWalker.fingerprint(path: path) == fingerprint else { throw HashError.changedWhileReading(path: path) }
        let whole = sha.finalize()
        return FileHashes(sha256: whole, partMD5s: md5s, partSHA256s: layout.isMultipart ? shas : [whole], layout: layout)
    }

    /// A large file's SHA-256s (whole and per part) on this thread and its part MD5s beside it
    /// (both read through the page cache): the first byte of a big upload waits ~1/3 less.
    private static func computeOnTwoThreads(
        fd: Int32, path: String, layout: PartLayout,
        fingerprint: FileFingerprint, observe: ((UnsafeRawBufferPointer) -> Void)?
    ) throws -> FileHashes {
        let parts = PartMD5s(fd: fd, path: path, layout: layout)
        let finished = DispatchSemaphore(value: 0)
        // CPU work beside this pool thread: GCD's workers, as gzip's blocks (never our pool, whose
        // threads may all be waiting like this one).
        DispatchQueue.global().async {
            parts.run()
            finished.signal()
        }
        var sha = Digest(.sha256)
        var shas: [[UInt8]] = []
        let shaResult = Result {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
            defer { buffer.deallocate() }
            for part in 1...layout.partCount {
                let (offset, length) = layout.range(ofPart: part)
                var partSHA = Digest(.sha256)
                try read(fd: fd, path: path, offset: offset, length: length, buffer: buffer) { bytes in
                    sha.update(bytes)
                    partSHA.update(bytes)
                    observe?(bytes)
                }
                shas.append(partSHA.finalize())
            }
        }
        finished.wait()
        try shaResult.get()
        if let error = parts.error { throw error }
        guard FileWalker.fingerprint(path: path) == fingerprint else { throw HashError.changedWhileReading(path: path) }
        return FileHashes(sha256: sha.finalize(), partMD5s: parts.md5s, partSHA256s: shas, layout: layout)
    }

    /// The part MD5s, computed on the thread that calls `run`; read after it returns.
    private final class PartMD5s: @unchecked Sendable {
        let fd: Int32
        let path: String
        let layout: PartLayout
        var md5s: [[UInt8]] = []
        var error: Error?

        init(fd: Int32, path: String, layout: PartLayout) {
            self.fd = fd
            self.path = path
            self.layout = layout
        }

        func run() {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FileHashes.chunk, alignment: 4096)
            defer { buffer.deallocate() }
            do {
                for part in 1...layout.partCount {
                    let (offset, length) = layout.range(ofPart: part)
                    var md5 = Digest(.md5)
                    try FileHashes.read(fd: fd, path: path, offset: offset, length: length, buffer: buffer) { md5.update($0) }
                    md5s.append(md5.finalize())
                }
            } catch {
                self.error = error
            }
        }
    }

    /// SHA-256 of one byte range.
    public static func sha256(path: String, fd: Int32, offset: Int64, length: Int64) throws -> [UInt8] {
        var sha = Digest(.sha256)
        try hash(&sha, fd: fd, path: path, offset: offset, length: length)
        return sha.finalize()
    }

    /// SHA-256 (hex) of a whole file.
    public static func sha256(path: String) throws -> String {
        let fd = open(fsPath(path), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError.read(path: path, message: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        return try sha256(path: path, fd: fd, offset: 0, length: Int64(st.st_size)).hex
    }

    /// Feeds a byte range of an open file into `digest`.
    public static func hash(_ digest: inout Digest, fd: Int32, path: String, offset: Int64, length: Int64) throws {
        try read(fd: fd, path: path, offset: offset, length: length) { digest.update($0) }
    }

    /// Hands a byte range of an open file to `consume`, a chunk at a time.
    static func read(fd: Int32, path: String, offset: Int64, length: Int64, _ consume: (UnsafeRawBufferPointer) -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        try read(fd: fd, path: path, offset: offset, length: length, buffer: buffer, consume)
    }

    /// fsync a directory, so a rename in it survives a power cut.
    public static func syncDirectory(_ path: String) {
        let fd = open(fsPath(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    fileprivate static func read(
        fd: Int32, path: String, offset: Int64, length: Int64, buffer: UnsafeMutableRawBufferPointer,
        _ consume: (UnsafeRawBufferPointer) -> Void
    ) throws {
        var done: Int64 = 0
        while done < length {
            let want = Int(min(Int64(buffer.count), length - done))
            let n = try FileIO.readFully(fd, path, buffer, want, at: offset + done)
            // The file ended early: it was truncated under us.
            guard n == want else { throw HashError.changedWhileReading(path: path) }
            consume(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            done += Int64(n)
        }
    }
}
