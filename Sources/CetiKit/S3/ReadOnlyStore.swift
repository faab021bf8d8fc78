/// The store of a dry run: reads pass through, every write is refused before it leaves the
/// machine. The steps decide what they would do without writing; this layer makes sure of it.
public struct ReadOnlyStore: ObjectStore {
    public let base: any ObjectStore

    public init(_ base: any ObjectStore) { self.base = base }

    public struct Refused: Error, CustomStringConvertible {
        public var operation: String
        public var key: String
        public var description: String { "internal: a dry run tried to \(operation) \(key); nothing was written" }
    }

    public func checkBucket(_ bucket: String) async throws { try await base.checkBucket(bucket) }

    public func listFolder(bucket: String, prefix: String) async throws -> [String: ObjectHead] {
        try await base.listFolder(bucket: bucket, prefix: prefix)
    }

    public func headObject(bucket: String, key: String) async throws -> ObjectHead? {
        try await base.headObject(bucket: bucket, key: key)
    }

    public func getObject(bucket: String, key: String) async throws -> (body: [UInt8], etag: String)? {
        try await base.getObject(bucket: bucket, key: key)
    }

    public func getObjectRange(bucket: String, key: String, offset: Int64, count: Int64) async throws -> [UInt8] {
        try await base.getObjectRange(bucket: bucket, key: key, offset: offset, count: count)
    }

    public func putObject(
        bucket: String, key: String, body: HTTPRequest.Body, md5: [UInt8], sha256: [UInt8],
        metadata: [(String, String)], createOnly: Bool, onBytesSent: (@Sendable (Int64) -> Void)?
    ) async throws -> String {
        throw Refused(operation: "PutObject", key: key)
    }

    public func createMultipartUpload(bucket: String, key: String, metadata: [(String, String)]) async throws -> String {
        throw Refused(operation: "CreateMultipartUpload", key: key)
    }

    public func uploadPart(
        bucket: String, key: String, uploadID: String, number: Int, body: HTTPRequest.Body,
        md5: [UInt8], sha256: [UInt8], onBytesSent: (@Sendable (Int64) -> Void)?
    ) async throws -> String {
        throw Refused(operation: "UploadPart", key: key)
    }

    public func listParts(bucket: String, key: String, uploadID: String) async throws -> [RemotePart] {
        try await base.listParts(bucket: bucket, key: key, uploadID: uploadID)
    }

    public func completeMultipartUpload(
        bucket: String, key: String, uploadID: String, parts: [(number: Int, etag: String)], createOnly: Bool
    ) async throws -> String {
        throw Refused(operation: "CompleteMultipartUpload", key: key)
    }

    public func abortMultipartUpload(bucket: String, key: String, uploadID: String) async throws {
        throw Refused(operation: "AbortMultipartUpload", key: key)
    }
}
