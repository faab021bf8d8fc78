import Foundation

/// Retries transient failures (`S3Error.transient`) of any store with jittered backoff, within the
/// policy's attempts; every other error passes through at once. Wrapped around `S3Client` for the
/// real runs and around the memory store in tests, so the steps never retry on their own.
public struct RetryingStore: ObjectStore {
    public let base: any ObjectStore
    public let policy: RetryPolicy
    let clock: any WallClock
    let log: (@Sendable (String) -> Void)?

    public init(
        _ base: any ObjectStore, policy: RetryPolicy = RetryPolicy(), clock: any WallClock = SystemClock(),
        log: (@Sendable (String) -> Void)? = nil
    ) {
        self.base = base
        self.policy = policy
        self.clock = clock
        self.log = log
    }

    func attempt<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await body()
            } catch S3Error.transient(let failure) {
                let limit = failure.network == nil ? policy.maxAttempts : min(policy.maxAttempts, policy.networkAttempts)
                guard attempt < limit else { throw failure.final(attempts: attempt) }
                let delay = policy.delay(afterAttempt: attempt)
                log?(
                    "retrying \(failure.operation) \(failure.key.printable) in \(String(format: "%.1f", delay)) s after "
                        + "\(failure.summary) (attempt \(attempt) of \(policy.maxAttempts))")
                try await clock.sleep(seconds: delay)
            }
        }
    }

    public func checkBucket(_ bucket: String) async throws {
        try await attempt { try await base.checkBucket(bucket) }
    }

    public func listFolder(bucket: String, prefix: String) async throws -> [String: ObjectHead] {
        try await attempt { try await base.listFolder(bucket: bucket, prefix: prefix) }
    }

    public func headObject(bucket: String, key: String) async throws -> ObjectHead? {
        try await attempt { try await base.headObject(bucket: bucket, key: key) }
    }

    public func getObject(bucket: String, key: String) async throws -> (body: [UInt8], etag: String)? {
        let r = try await attempt { try await base.getObject(bucket: bucket, key: key).map { Fetched(body: $0.body, etag: $0.etag) } }
        return r.map { ($0.body, $0.etag) }
    }

    public func getObjectRange(bucket: String, key: String, offset: Int64, count: Int64) async throws -> [UInt8] {
        try await attempt { try await base.getObjectRange(bucket: bucket, key: key, offset: offset, count: count) }
    }

    public func putObject(
        bucket: String, key: String, body: HTTPRequest.Body, md5: [UInt8], sha256: [UInt8],
        metadata: [(String, String)], createOnly: Bool, onBytesSent: (@Sendable (Int64) -> Void)?
    ) async throws -> String {
        let pairs = metadata.map { Pair(name: $0.0, value: $0.1) }
        return try await attempt {
            try await base.putObject(
                bucket: bucket, key: key, body: body, md5: md5, sha256: sha256, metadata: pairs.map { ($0.name, $0.value) },
                createOnly: createOnly, onBytesSent: onBytesSent)
        }
    }

    public func createMultipartUpload(bucket: String, key: String, metadata: [(String, String)]) async throws -> String {
        let pairs = metadata.map { Pair(name: $0.0, value: $0.1) }
        return try await attempt {
            try await base.createMultipartUpload(bucket: bucket, key: key, metadata: pairs.map { ($0.name, $0.value) })
        }
    }

    public func uploadPart(
        bucket: String, key: String, uploadID: String, number: Int, body: HTTPRequest.Body,
        md5: [UInt8], sha256: [UInt8], onBytesSent: (@Sendable (Int64) -> Void)?
    ) async throws -> String {
        try await attempt {
            try await base.uploadPart(
                bucket: bucket, key: key, uploadID: uploadID, number: number, body: body, md5: md5, sha256: sha256,
                onBytesSent: onBytesSent)
        }
    }

    public func listParts(bucket: String, key: String, uploadID: String) async throws -> [RemotePart] {
        try await attempt { try await base.listParts(bucket: bucket, key: key, uploadID: uploadID) }
    }

    public func completeMultipartUpload(
        bucket: String, key: String, uploadID: String, parts: [(number: Int, etag: String)], createOnly: Bool
    ) async throws -> String {
        let list = parts.map { PartETag(number: $0.number, etag: $0.etag) }
        return try await attempt {
            try await base.completeMultipartUpload(
                bucket: bucket, key: key, uploadID: uploadID, parts: list.map { ($0.number, $0.etag) }, createOnly: createOnly)
        }
    }

    public func abortMultipartUpload(bucket: String, key: String, uploadID: String) async throws {
        try await attempt { try await base.abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID) }
    }

    // Sendable stand-ins for the tuples the protocol speaks in.
    private struct Pair: Sendable {
        var name: String
        var value: String
    }
    private struct PartETag: Sendable {
        var number: Int
        var etag: String
    }
    private struct Fetched: Sendable {
        var body: [UInt8]
        var etag: String
    }
}
