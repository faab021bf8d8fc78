import Foundation

@testable import CetiKit

/// S3 in memory, answering as `S3Client` does: unquoted ETags (MD5 hex for one PUT, MD5 of the
/// parts' binary MD5s plus "-N" for multipart), Content-MD5 and SHA-256 checked, create-only
/// writes refused with 412, `x-amz-meta-sha256` back as `ObjectHead.sha256`, and errors of the
/// kind S3Client throws (what another attempt may cure is `S3Error.transient`). Faults can be
/// injected per request, so `RetryingStore` and the steps above it are tested without a server.
final class MemoryObjectStore: ObjectStore, @unchecked Sendable {
    struct Object {
        var bytes: [UInt8]
        var etag: String
        var metadata: [String: String]
    }

    private struct Part {
        var bytes: [UInt8]
        var etag: String
    }

    private struct Upload {
        var bucket: String
        var key: String
        var metadata: [String: String]
        var parts: [Int: Part] = [:]
    }

    /// One injected failure; `remaining` counts down the requests it applies to.
    private struct Fault {
        var error: S3Error?
        var operation: String?
        var remaining: Int
        var afterEffect: Bool
    }

    private struct State {
        var buckets: [String: [String: Object]]
        var uploads: [String: Upload] = [:]
        var nextUpload = 0
        var faults: [Fault] = []
        var log: [(operation: String, key: String)] = []
        var offline = false
        var minPartSize = PartLayout.minPartSize
    }

    private let lock = NSLock()
    private var state: State

    init(buckets: [String]) {
        state = State(buckets: Dictionary(uniqueKeysWithValues: buckets.map { ($0, [:]) }))
    }

    // MARK: fault injection

    /// The `n`th request from now (1-based; of `operation` only, when given) fails with `error`
    /// before it takes effect. Once.
    /// Called with the key before each PutObject is carried out (another writer racing this one).
    let beforePut = Locked<(@Sendable (String) -> Void)?>(nil)

    func fail(_ error: S3Error, onRequest n: Int, operation: String? = nil) {
        lock.withLock { state.faults.append(Fault(error: error, operation: operation, remaining: n, afterEffect: false)) }
    }

    /// The `n`th request from now takes effect, then its answer is lost: it throws `error`
    /// (by default a transient network failure), as when a connection drops after the server
    /// acted. Once.
    func failAfterEffect(onRequest n: Int, operation: String? = nil, error: S3Error? = nil) {
        lock.withLock { state.faults.append(Fault(error: error, operation: operation, remaining: n, afterEffect: true)) }
    }

    /// Every request fails as when the server cannot be reached.
    var offline: Bool {
        get { lock.withLock { state.offline } }
        set { lock.withLock { state.offline = newValue } }
    }

    /// S3 refuses to complete an upload whose parts (all but the last) are smaller: 5 MiB, as
    /// S3's own rule. Tests with tiny parts set it lower.
    var minPartSize: Int64 {
        get { lock.withLock { state.minPartSize } }
        set { lock.withLock { state.minPartSize = newValue } }
    }

    // MARK: inspection

    /// Every request, in order: its operation and its key (the bucket for bucket-wide requests).
    var requests: [(operation: String, key: String)] { lock.withLock { state.log } }

    func count(_ operation: String) -> Int { lock.withLock { state.log.filter { $0.operation == operation }.count } }

    func object(bucket: String, key: String) -> (bytes: [UInt8], etag: String, metadata: [String: String])? {
        lock.withLock { state.buckets[bucket]?[key].map { ($0.bytes, $0.etag, $0.metadata) } }
    }

    func keys(bucket: String) -> [String] { lock.withLock { (state.buckets[bucket]?.keys).map { $0.sorted() } ?? [] } }

    /// An object as if an earlier run (or someone else) had uploaded it with one PUT.
    func insert(bucket: String, key: String, bytes: [UInt8], metadata: [String: String] = [:]) {
        lock.withLock { state.buckets[bucket]?[key] = Object(bytes: bytes, etag: Digest.md5(bytes).hex, metadata: metadata) }
    }

    func delete(bucket: String, key: String) { lock.withLock { _ = state.buckets[bucket]?.removeValue(forKey: key) } }

    /// Other bytes under the key, metadata kept (so its `sha256` now lies): tampering, or bit rot.
    func replace(bucket: String, key: String, bytes: [UInt8]) {
        lock.withLock {
            guard var o = state.buckets[bucket]?[key] else { return }
            o.bytes = bytes
            o.etag = Digest.md5(bytes).hex
            state.buckets[bucket]?[key] = o
        }
    }

    /// Multipart uploads created and neither completed nor aborted.
    func openUploads(bucket: String) -> [(key: String, uploadID: String)] {
        lock.withLock {
            state.uploads.filter { $0.value.bucket == bucket }.map { ($0.value.key, $0.key) }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        }
    }

    // MARK: ObjectStore

    func checkBucket(_ bucket: String) async throws {
        try perform("ListObjectsV2", bucket: bucket, key: nil) { _ in }
    }

    func listFolder(bucket: String, prefix: String) async throws -> [String: ObjectHead] {
        try perform("ListObjectsV2", bucket: bucket, key: nil) { objects in
            // delimiter "/": only the keys directly under the prefix.
            var out: [String: ObjectHead] = [:]
            // (Compared as bytes: S3 keys are byte strings, Swift's String comparison is not.)
            for (key, o) in objects where key.utf8.starts(with: prefix.utf8) && !key.utf8.dropFirst(prefix.utf8.count).contains(0x2F) {
                out[key] = ObjectHead(size: Int64(o.bytes.count), etag: o.etag, sha256: nil)
            }
            return out
        }
    }

    func headObject(bucket: String, key: String) async throws -> ObjectHead? {
        try perform("HeadObject", bucket: bucket, key: key) { objects in
            objects[key].map { ObjectHead(size: Int64($0.bytes.count), etag: $0.etag, sha256: $0.metadata["sha256"]) }
        }
    }

    func getObject(bucket: String, key: String) async throws -> (body: [UInt8], etag: String)? {
        try perform("GetObject", bucket: bucket, key: key) { objects in objects[key].map { ($0.bytes, $0.etag) } }
    }

    func getObjectRange(bucket: String, key: String, offset: Int64, count: Int64) async throws -> [UInt8] {
        try perform("GetObject", bucket: bucket, key: key) { objects in
            // S3Client does not allow a 404 on a ranged GET: it is a service error.
            guard let o = objects[key] else {
                throw Self.error("GetObject", key, 404, "NoSuchKey", "The specified key does not exist.")
            }
            let size = Int64(o.bytes.count)
            guard offset >= 0, offset < size || (offset == 0 && size == 0) else {
                throw Self.error("GetObject", key, 416, "InvalidRange", "The requested range is not satisfiable")
            }
            let end = min(size, offset + max(0, count))
            return Array(o.bytes[Int(offset)..<Int(end)])
        }
    }

    func putObject(
        bucket: String, key: String, body: HTTPRequest.Body, md5: [UInt8], sha256: [UInt8],
        metadata: [(String, String)], createOnly: Bool, onBytesSent: (@Sendable (Int64) -> Void)?
    ) async throws -> String {
        beforePut.value?(key)
        let meta = Self.metadata(metadata)
        return try perform("PutObject", bucket: bucket, key: key, body: body, onBytesSent: onBytesSent) { objects, bytes in
            try Self.checkDigests("PutObject", key, bytes, md5: md5, sha256: sha256)
            if createOnly && objects[key] != nil { throw Self.preconditionFailed("PutObject", key) }
            let etag = Digest.md5(bytes).hex
            objects[key] = Object(bytes: bytes, etag: etag, metadata: meta)
            return etag
        }
    }

    func createMultipartUpload(bucket: String, key: String, metadata: [(String, String)]) async throws -> String {
        let meta = Self.metadata(metadata)
        return try perform("CreateMultipartUpload", bucket: bucket, key: key) { _ in
            state.nextUpload += 1
            let id = "memory-upload-\(state.nextUpload)"
            state.uploads[id] = Upload(bucket: bucket, key: key, metadata: meta)
            return id
        }
    }

    func uploadPart(
        bucket: String, key: String, uploadID: String, number: Int, body: HTTPRequest.Body,
        md5: [UInt8], sha256: [UInt8], onBytesSent: (@Sendable (Int64) -> Void)?
    ) async throws -> String {
        try perform("UploadPart", bucket: bucket, key: key, body: body, onBytesSent: onBytesSent) { _, bytes in
            try Self.checkDigests("UploadPart", key, bytes, md5: md5, sha256: sha256)
            // Only ListParts turns a missing upload into `.noSuchUpload`; here it is a service error.
            guard let upload = state.uploads[uploadID], upload.bucket == bucket, upload.key == key else {
                throw Self.noSuchUpload("UploadPart", key)
            }
            guard (1...10_000).contains(number) else {
                throw Self.error("UploadPart", key, 400, "InvalidArgument", "Part number must be an integer between 1 and 10000")
            }
            let etag = Digest.md5(bytes).hex
            state.uploads[uploadID]?.parts[number] = Part(bytes: bytes, etag: etag)
            return etag
        }
    }

    func listParts(bucket: String, key: String, uploadID: String) async throws -> [RemotePart] {
        try perform("ListParts", bucket: bucket, key: key) { _ in
            guard let upload = state.uploads[uploadID], upload.bucket == bucket, upload.key == key else {
                throw S3Error.noSuchUpload(key: key)
            }
            return upload.parts.sorted { $0.key < $1.key }.map {
                RemotePart(number: $0.key, etag: $0.value.etag, size: Int64($0.value.bytes.count))
            }
        }
    }

    func completeMultipartUpload(
        bucket: String, key: String, uploadID: String, parts: [(number: Int, etag: String)], createOnly: Bool
    ) async throws -> String {
        let op = "CompleteMultipartUpload"
        let list = parts.map { (number: $0.number, etag: S3Client.unquote($0.etag)) }
        return try perform(op, bucket: bucket, key: key) { objects in
            // A completed upload is gone: completing it again is NoSuchUpload, as on S3.
            guard let upload = state.uploads[uploadID], upload.bucket == bucket, upload.key == key else {
                throw Self.noSuchUpload(op, key)
            }
            guard !list.isEmpty else { throw Self.error(op, key, 400, "MalformedXML", "no parts") }
            guard zip(list, list.dropFirst()).allSatisfy({ $0.number < $1.number }) else {
                throw Self.error(op, key, 400, "InvalidPartOrder", "The list of parts was not in ascending order.")
            }
            var chosen: [Part] = []
            for p in list {
                guard let part = upload.parts[p.number], part.etag == p.etag else {
                    throw Self.error(op, key, 400, "InvalidPart", "Part \(p.number) was not found or its ETag did not match.")
                }
                chosen.append(part)
            }
            for part in chosen.dropLast() where Int64(part.bytes.count) < state.minPartSize {
                throw Self.error(op, key, 400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
            }
            if createOnly && objects[key] != nil { throw Self.preconditionFailed(op, key) }
            var d = Digest(.md5)
            for part in chosen { d.update(Array<UInt8>(hex: part.etag)!) }
            let etag = d.finalize().hex + "-\(chosen.count)"
            objects[key] = Object(bytes: chosen.flatMap(\.bytes), etag: etag, metadata: upload.metadata)
            state.uploads[uploadID] = nil
            return etag
        }
    }

    func abortMultipartUpload(bucket: String, key: String, uploadID: String) async throws {
        // S3Client allows the 404 of an upload already gone.
        try perform("AbortMultipartUpload", bucket: bucket, key: key) { _ in
            if let upload = state.uploads[uploadID], upload.bucket == bucket, upload.key == key { state.uploads[uploadID] = nil }
        }
    }

    // MARK: one request

    /// One request: logged, then offline or an injected fault, then its body read (as libcurl
    /// would, with pread), then `effect` on the bucket's objects under the lock.
    private func perform<T>(
        _ operation: String, bucket: String, key: String?, body: HTTPRequest.Body = .empty,
        onBytesSent: (@Sendable (Int64) -> Void)? = nil,
        _ effect: (inout [String: Object], [UInt8]) throws -> T
    ) throws -> T {
        let name = key ?? bucket
        let (offline, fault) = lock.withLock { () -> (Bool, Fault?) in
            state.log.append((operation, name))
            return (state.offline, takeFault(operation))
        }
        if offline { throw S3Error.transient(TransientFailure(operation: operation, key: name, network: "connection refused")) }
        let bytes = try Self.read(body, key: name)
        let length = Int64(bytes.count)
        if let fault, !fault.afterEffect, let error = fault.error {
            // A body reaches the server unless the network failed (libcurl undoes its progress then).
            if !Self.isNetwork(error) { onBytesSent?(length) }
            throw error
        }
        onBytesSent?(length)
        let result = try lock.withLock {
            guard var objects = state.buckets[bucket] else { throw S3Error.noSuchBucket(bucket: bucket, endpoint: "memory") }
            defer { state.buckets[bucket] = objects }
            return try effect(&objects, bytes)
        }
        if let fault {
            let error =
                fault.error
                ?? .transient(
                    TransientFailure(operation: operation, key: name, network: "connection reset by peer (after the request took effect)"))
            if Self.isNetwork(error) { onBytesSent?(-length) }
            throw error
        }
        return result
    }

    private func perform<T>(
        _ operation: String, bucket: String, key: String?, _ effect: (inout [String: Object]) throws -> T
    ) throws -> T {
        try perform(operation, bucket: bucket, key: key) { objects, _ in try effect(&objects) }
    }

    /// Counts this request against every pending fault; the first that falls due is taken (caller holds `lock`).
    private func takeFault(_ operation: String) -> Fault? {
        var due: Fault?
        for i in state.faults.indices where state.faults[i].operation == nil || state.faults[i].operation == operation {
            state.faults[i].remaining -= 1
            if state.faults[i].remaining == 0 && due == nil { due = state.faults[i] }
        }
        state.faults.removeAll { $0.remaining <= 0 }
        return due
    }

    private static func read(_ body: HTTPRequest.Body, key: String) throws -> [UInt8] {
        switch body {
        case .empty:
            return []
        case .bytes(let b):
            return b
        case .file(let fd, let offset, let length):
            var out = [UInt8](repeating: 0, count: Int(length))
            var got = 0
            while got < out.count {
                let r = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, $0.count - got, off_t(offset) + off_t(got)) }
                if r < 0 && errno == EINTR { continue }
                // As CurlTransfer: a read error, or a file that shrank (EIO), is a local read error.
                guard r > 0 else { throw S3Error.localRead(path: key, message: String(cString: strerror(r < 0 ? errno : EIO))) }
                got += r
            }
            return out
        }
    }

    /// A damaged body is what S3Client counts as transient (BadDigest: sending again cures it).
    private static func checkDigests(_ op: String, _ key: String, _ bytes: [UInt8], md5: [UInt8], sha256: [UInt8]) throws {
        if !md5.isEmpty && Digest.md5(bytes) != md5 {
            throw S3Error.transient(
                TransientFailure(
                    operation: op, key: key, status: 400, code: "BadDigest",
                    message: "The Content-MD5 you specified did not match what we received."))
        }
        if !sha256.isEmpty && Digest.sha256(bytes) != sha256 {
            throw S3Error.transient(
                TransientFailure(
                    operation: op, key: key, status: 400, code: "XAmzContentSHA256Mismatch",
                    message: "The provided 'x-amz-content-sha256' header does not match what was computed."))
        }
    }

    private static func isNetwork(_ error: S3Error) -> Bool {
        if case .transient(let f) = error { return f.network != nil }
        return false
    }

    /// S3 keeps user metadata under lowercase names.
    private static func metadata(_ pairs: [(String, String)]) -> [String: String] {
        Dictionary(pairs.map { ($0.0.lowercased(), $0.1) }) { _, last in last }
    }

    private static func error(_ op: String, _ key: String, _ status: Int, _ code: String, _ message: String) -> S3Error {
        .service(operation: op, key: key, status: status, code: code, message: message)
    }

    private static func preconditionFailed(_ op: String, _ key: String) -> S3Error {
        error(op, key, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
    }

    private static func noSuchUpload(_ op: String, _ key: String) -> S3Error {
        error(op, key, 404, "NoSuchUpload", "The specified upload does not exist.")
    }
}
