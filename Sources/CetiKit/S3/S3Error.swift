/// What went wrong talking to S3, in words an operator can act on. `isFatal` errors stop the
/// whole run at once (nothing else can succeed with the same credentials or bucket).
public enum S3Error: Error, CustomStringConvertible, Sendable {
    /// The server refused who we are: wrong key, wrong secret, no permission, bad signature.
    case accessDenied(bucket: String, code: String, credentialSource: String, endpoint: String)
    case noSuchBucket(bucket: String, endpoint: String)
    /// The server answered with an error that retrying did not cure (or that retrying cannot cure).
    case service(operation: String, key: String, status: Int, code: String, message: String)
    /// The network failed on every attempt.
    case unreachable(operation: String, key: String, attempts: Int, last: String)
    /// A multipart upload the ledger knew of is gone from the server.
    case noSuchUpload(key: String)
    /// A local read error while sending.
    case localRead(path: String, message: String)
    /// One attempt failed in a way another may cure (a dropped connection, a 5xx, SlowDown):
    /// `RetryingStore` tries again, and after its last attempt throws `failure.final(attempts:)`.
    case transient(TransientFailure)

    /// A create-only write found the key taken: another uploader got there first.
    public var isPreconditionFailed: Bool {
        guard case .service(_, _, let status, let code, _) = self else { return false }
        return status == 412 || status == 409 || code == "PreconditionFailed" || code == "ConditionalRequestConflict"
    }

    public var isFatal: Bool {
        switch self {
        case .accessDenied, .noSuchBucket: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .accessDenied(let bucket, let code, let source, let endpoint):
            let hint =
                code == "SignatureDoesNotMatch"
                ? "the secret access key is wrong"
                : code == "InvalidAccessKeyId"
                    ? "the access key id is unknown to the server"
                    : code == "RequestTimeTooSkewed" ? "this machine's clock is wrong" : "access was denied"
            return "S3 refused the request to bucket '\(bucket)' at \(endpoint) (\(code)): \(hint); check the credentials from \(source)"
        case .noSuchBucket(let bucket, let endpoint):
            return "bucket '\(bucket)' does not exist at \(endpoint): check --bucket / CETI_BUCKET and --endpoint-url"
        case .service(let op, let key, let status, let code, let message):
            let detail = message.isEmpty ? "" : ": \(message)"
            return "\(op) \(key) failed with HTTP \(status) \(code)\(detail)"
        case .unreachable(let op, let key, let attempts, let last):
            return "\(op) \(key) failed after \(attempts) attempts: \(last); check the network and rerun to resume"
        case .noSuchUpload(let key):
            return "the multipart upload of \(key) no longer exists on the server"
        case .localRead(let path, let message):
            return "could not read \(path) while uploading it: \(message)"
        case .transient(let failure):
            return failure.final(attempts: 1).description
        }
    }
}

/// What one failed attempt said: the network's error, or the server's status and code.
public struct TransientFailure: Sendable, Equatable {
    public var operation: String
    public var key: String
    public var status: Int? = nil
    public var code: String = ""
    public var message: String = ""
    /// The network problem (no HTTP answer), or nil when the server answered.
    public var network: String? = nil

    /// The error to report once no attempt is left.
    public func final(attempts: Int) -> S3Error {
        if let network { return .unreachable(operation: operation, key: key, attempts: attempts, last: network) }
        let after = attempts > 1 ? "after \(attempts) attempts" : ""
        return .service(
            operation: operation, key: key, status: status ?? 0, code: code,
            message: [message, after.isEmpty ? "" : message.isEmpty ? after : "(\(after))"].filter { !$0.isEmpty }
                .joined(separator: " "))
    }

    /// Short, for the retry log line.
    var summary: String { network ?? "HTTP \(status ?? 0) \(code)" }
}
