/// The object-store operations ceti uses, and nothing else. `S3Client` speaks them to S3 over
/// libcurl (one attempt each); `RetryingStore` is the layer that retries transient failures around
/// any store; tests hand the same steps a memory store. Keys and buckets are passed as they are;
/// bodies are bytes or a range of an open file (read with pread, so a retry re-reads it).
public protocol ObjectStore: Sendable {
    /// Proves the credentials and the bucket before anything is written anywhere.
    func checkBucket(_ bucket: String) async throws
    /// The objects directly under `prefix` (not in its sub-folders), all pages; no metadata.
    func listFolder(bucket: String, prefix: String) async throws -> [String: ObjectHead]
    /// nil when there is no object under the key.
    func headObject(bucket: String, key: String) async throws -> ObjectHead?
    func getObject(bucket: String, key: String) async throws -> (body: [UInt8], etag: String)?
    /// `count` bytes from `offset` (a ranged GET): reading an object back in bounded memory.
    func getObjectRange(bucket: String, key: String, offset: Int64, count: Int64) async throws -> [UInt8]
    /// Returns the ETag the server computed. `createOnly` (`If-None-Match: *`): the store refuses
    /// when the key exists (`S3Error.isPreconditionFailed`), so two writers never overwrite each other.
    func putObject(
        bucket: String, key: String, body: HTTPRequest.Body, md5: [UInt8], sha256: [UInt8],
        metadata: [(String, String)], createOnly: Bool, onBytesSent: (@Sendable (Int64) -> Void)?
    ) async throws -> String
    func createMultipartUpload(bucket: String, key: String, metadata: [(String, String)]) async throws -> String
    func uploadPart(
        bucket: String, key: String, uploadID: String, number: Int, body: HTTPRequest.Body,
        md5: [UInt8], sha256: [UInt8], onBytesSent: (@Sendable (Int64) -> Void)?
    ) async throws -> String
    /// Every part the store holds for an upload; `S3Error.noSuchUpload` when the upload is gone.
    func listParts(bucket: String, key: String, uploadID: String) async throws -> [RemotePart]
    func completeMultipartUpload(
        bucket: String, key: String, uploadID: String, parts: [(number: Int, etag: String)], createOnly: Bool
    ) async throws -> String
    func abortMultipartUpload(bucket: String, key: String, uploadID: String) async throws
}

extension ObjectStore {
    public func putObject(
        bucket: String, key: String, body: HTTPRequest.Body, md5: [UInt8], sha256: [UInt8],
        metadata: [(String, String)], createOnly: Bool = false
    ) async throws -> String {
        try await putObject(
            bucket: bucket, key: key, body: body, md5: md5, sha256: sha256, metadata: metadata,
            createOnly: createOnly, onBytesSent: nil)
    }

    /// The SHA-256 of an object's first `size` bytes, read back in ranges (bounded memory), and how
    /// many bytes there were (fewer than `size` when the object is shorter).
    public func sha256(bucket: String, key: String, size: Int64) async throws -> (hex: String, bytes: Int64) {
        var sha = Digest(.sha256)
        let chunk: Int64 = 8 << 20
        var offset: Int64 = 0
        while offset < size {
            let bytes = try await getObjectRange(bucket: bucket, key: key, offset: offset, count: min(chunk, size - offset))
            guard !bytes.isEmpty else { break }
            sha.update(bytes)
            offset += Int64(bytes.count)
        }
        return (sha.finalize().hex, offset)
    }

    /// A small object sent from memory (manifests, markers); its ETag checked against its MD5.
    public func putSmall(_ body: [UInt8], bucket: String, key: String, createOnly: Bool = false) async throws -> String {
        let md5 = Digest.md5(body)
        let sha = Digest.sha256(body)
        let etag = try await putObject(
            bucket: bucket, key: key, body: .bytes(body), md5: md5, sha256: sha,
            metadata: [("sha256", sha.hex)], createOnly: createOnly, onBytesSent: nil)
        guard etag == md5.hex else { throw UploadError.etagMismatch(key: key, expected: md5.hex, got: etag) }
        return etag
    }
}
