import Foundation

/// What HEAD tells about an object.
public struct ObjectHead: Sendable, Equatable {
    public var size: Int64
    /// Without the surrounding quotes.
    public var etag: String
    /// Our `x-amz-meta-sha256`, when the object was uploaded by ceti.
    public var sha256: String?
}

/// A part as the server lists it.
public struct RemotePart: Sendable, Equatable {
    public var number: Int
    public var etag: String
    public var size: Int64
}

/// The S3 operations ceti needs, signed with SigV4, over libcurl: one attempt each (retries are
/// `RetryingStore`'s, around it).
public final class S3Client: ObjectStore {
    public let endpoint: S3Endpoint
    public let region: String
    public let credentials: AWSCredentials
    let http: CurlClient
    private let signer: SigV4Signer
    /// Seconds to add to this machine's clock: learnt from the server once it says we are skewed.
    private let clockOffset = Locked<TimeInterval>(0)
    /// One line per request (-vv): method, key, status, time. Never a header (they hold the signature).
    let log: (@Sendable (String) -> Void)?

    public init(
        endpoint: S3Endpoint, region: String, credentials: AWSCredentials, http: CurlClient,
        log: (@Sendable (String) -> Void)? = nil
    ) {
        self.endpoint = endpoint
        self.region = region
        self.credentials = credentials
        self.http = http
        self.log = log
        self.signer = SigV4Signer(credentials: credentials, region: region)
    }

    static let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    struct Operation {
        var name: String
        var method: String
        var bucket: String
        var key: String?
        var query: [(String, String)] = []
        var headers: [(String, String)] = []
        var body: HTTPRequest.Body = .empty
        var payloadSHA256 = S3Client.emptySHA256
    }

    // MARK: operations

    /// Proves the credentials and the bucket before anything is written anywhere.
    public func checkBucket(_ bucket: String) async throws {
        _ = try await send(
            Operation(
                name: "ListObjectsV2", method: "GET", bucket: bucket, key: nil,
                query: [("list-type", "2"), ("max-keys", "1")]))
    }

    /// The objects directly under `prefix` (not in its sub-folders), all pages.
    public func listFolder(bucket: String, prefix: String) async throws -> [String: ObjectHead] {
        var out: [String: ObjectHead] = [:]
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix), ("delimiter", "/")]
            if let token { query.append(("continuation-token", token)) }
            let r = try await send(Operation(name: "ListObjectsV2", method: "GET", bucket: bucket, key: nil, query: query))
            let xml = r.bodyText
            for block in S3XML.blocks("Contents", in: xml) {
                guard let key = S3XML.value("Key", in: block) else { continue }
                out[key] = ObjectHead(
                    size: S3XML.value("Size", in: block).flatMap { Int64($0) } ?? -1,
                    etag: Self.unquote(S3XML.value("ETag", in: block) ?? ""), sha256: nil)
            }
            let next = S3XML.value("NextContinuationToken", in: xml)
            token = S3XML.value("IsTruncated", in: xml) == "true" && next != token ? next : nil
        } while token != nil
        return out
    }

    public func headObject(bucket: String, key: String) async throws -> ObjectHead? {
        let r = try await send(Operation(name: "HeadObject", method: "HEAD", bucket: bucket, key: key), allow404: true)
        if r.status == 404 { return nil }
        return ObjectHead(
            size: Int64(r.header("content-length") ?? "") ?? 0,
            etag: Self.unquote(r.header("etag") ?? ""),
            sha256: r.header("x-amz-meta-sha256"))
    }

    public func getObject(bucket: String, key: String) async throws -> (body: [UInt8], etag: String)? {
        let r = try await send(Operation(name: "GetObject", method: "GET", bucket: bucket, key: key), allow404: true)
        if r.status == 404 { return nil }
        return (r.body, Self.unquote(r.header("etag") ?? ""))
    }

    /// `count` bytes of an object from `offset` (a ranged GET): reading an object back in bounded
    /// memory.
    public func getObjectRange(bucket: String, key: String, offset: Int64, count: Int64) async throws -> [UInt8] {
        let r = try await send(
            Operation(
                name: "GetObject", method: "GET", bucket: bucket, key: key,
                headers: [("range", "bytes=\(offset)-\(offset + count - 1)")]))
        return r.body
    }

    /// A single PUT; returns the ETag the server computed. `createOnly` adds `If-None-Match: *`:
    /// the server refuses (412, or 409 on a race) when the key exists, so two uploaders never
    /// overwrite each other (`S3Error.isPreconditionFailed`).
    public func putObject(
        bucket: String, key: String, body: HTTPRequest.Body, md5: [UInt8], sha256: [UInt8],
        metadata: [(String, String)], createOnly: Bool = false,
        onBytesSent: (@Sendable (Int64) -> Void)? = nil
    ) async throws -> String {
        var headers = [
            ("content-md5", md5.base64), ("x-amz-checksum-sha256", sha256.base64),
            ("content-type", "application/octet-stream"),
        ]
        if createOnly { headers.append(("if-none-match", "*")) }
        headers += metadata.map { ("x-amz-meta-\($0.0)", $0.1) }
        let r = try await send(
            Operation(
                name: "PutObject", method: "PUT", bucket: bucket, key: key, headers: headers,
                body: body, payloadSHA256: sha256.hex), onBytesSent: onBytesSent)
        return Self.unquote(r.header("etag") ?? "")
    }

    public func createMultipartUpload(bucket: String, key: String, metadata: [(String, String)]) async throws -> String {
        var headers = [("content-type", "application/octet-stream")]
        headers += metadata.map { ("x-amz-meta-\($0.0)", $0.1) }
        let r = try await send(
            Operation(
                name: "CreateMultipartUpload", method: "POST", bucket: bucket, key: key,
                query: [("uploads", "")], headers: headers))
        guard let id = S3XML.value("UploadId", in: r.bodyText), !id.isEmpty else {
            throw S3Error.service(
                operation: "CreateMultipartUpload", key: key, status: r.status, code: "NoUploadId",
                message: "the server's answer had no UploadId")
        }
        return id
    }

    public func uploadPart(
        bucket: String, key: String, uploadID: String, number: Int, body: HTTPRequest.Body,
        md5: [UInt8], sha256: [UInt8], onBytesSent: (@Sendable (Int64) -> Void)? = nil
    ) async throws -> String {
        let r = try await send(
            Operation(
                name: "UploadPart", method: "PUT", bucket: bucket, key: key,
                query: [("partNumber", String(number)), ("uploadId", uploadID)],
                headers: [("content-md5", md5.base64)],
                body: body, payloadSHA256: sha256.hex), onBytesSent: onBytesSent)
        return Self.unquote(r.header("etag") ?? "")
    }

    /// Every part the server holds for an upload (all pages).
    public func listParts(bucket: String, key: String, uploadID: String) async throws -> [RemotePart] {
        var parts: [RemotePart] = []
        var marker: String?
        repeat {
            var query = [("uploadId", uploadID), ("max-parts", "1000")]
            if let marker { query.append(("part-number-marker", marker)) }
            let r: HTTPResponse
            do {
                r = try await send(Operation(name: "ListParts", method: "GET", bucket: bucket, key: key, query: query))
            } catch let S3Error.service(_, _, status, code, _) where status == 404 || code == "NoSuchUpload" {
                throw S3Error.noSuchUpload(key: key)
            }
            let xml = r.bodyText
            for block in S3XML.blocks("Part", in: xml) {
                guard let n = S3XML.value("PartNumber", in: block).flatMap({ Int($0) }),
                    let etag = S3XML.value("ETag", in: block)
                else { continue }
                parts.append(
                    RemotePart(
                        number: n, etag: Self.unquote(etag),
                        size: S3XML.value("Size", in: block).flatMap { Int64($0) } ?? -1))
            }
            let truncated = S3XML.value("IsTruncated", in: xml) == "true"
            let next = S3XML.value("NextPartNumberMarker", in: xml)
            marker = truncated && next != nil && next != marker ? next : nil
        } while marker != nil
        return parts
    }

    /// `createOnly` as for `putObject`.
    public func completeMultipartUpload(
        bucket: String, key: String, uploadID: String,
        parts: [(number: Int, etag: String)], createOnly: Bool = false
    ) async throws -> String {
        var xml = "<CompleteMultipartUpload>"
        for p in parts.sorted(by: { $0.number < $1.number }) {
            xml += "<Part><PartNumber>\(p.number)</PartNumber><ETag>\"\(S3XML.escape(p.etag))\"</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let body = Array(xml.utf8)
        let r = try await send(
            Operation(
                name: "CompleteMultipartUpload", method: "POST", bucket: bucket, key: key,
                query: [("uploadId", uploadID)],
                headers: [("content-type", "application/xml"), ("content-md5", Digest.md5(body).base64)]
                    + (createOnly ? [("if-none-match", "*")] : []),
                body: .bytes(body), payloadSHA256: Digest.sha256(body).hex))
        let text = r.bodyText
        // S3 may answer 200 and still report an error in the body.
        if let code = S3XML.value("Code", in: text), text.contains("<Error>") {
            throw S3Error.service(
                operation: "CompleteMultipartUpload", key: key, status: r.status, code: code,
                message: S3XML.value("Message", in: text) ?? "")
        }
        return Self.unquote(S3XML.value("ETag", in: text) ?? r.header("etag") ?? "")
    }

    public func abortMultipartUpload(bucket: String, key: String, uploadID: String) async throws {
        _ = try await send(
            Operation(
                name: "AbortMultipartUpload", method: "DELETE", bucket: bucket, key: key,
                query: [("uploadId", uploadID)]), allow404: true)
    }

    static func unquote(_ etag: String) -> String {
        etag.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }

    // MARK: sending, signing, retrying

    private var now: Date {
        Date().addingTimeInterval(clockOffset.value)
    }

    private func request(for op: Operation) -> HTTPRequest {
        let (host, path, base) = endpoint.locate(bucket: op.bucket, key: op.key)
        var headers = op.headers
        headers.append(("host", host))
        if op.body.length > 0 || op.method == "PUT" || op.method == "POST" {
            headers.append(("content-length", String(op.body.length)))
        }
        let signed = signer.sign(
            method: op.method, path: path, query: op.query, headers: headers,
            payloadSHA256: op.payloadSHA256, date: now)
        let query = op.query
            .map { (S3URI.encode($0.0, encodeSlash: true), S3URI.encode($0.1, encodeSlash: true)) }
            .sorted { $0 < $1 }
            .map { $0.1.isEmpty && $0.0 == "uploads" ? $0.0 : "\($0.0)=\($0.1)" }
            .joined(separator: "&")
        // Content-Length is libcurl's to send; it was only given to the signer.
        let sent = (headers + signed).filter { $0.0.lowercased() != "content-length" }
        return HTTPRequest(method: op.method, url: query.isEmpty ? base : "\(base)?\(query)", headers: sent, body: op.body)
    }

    /// Sends once (and once more after correcting the clock from the server's when S3 says it is
    /// skewed). Returns any 2xx response (and 404 when `allow404`); throws `S3Error.transient` for
    /// what another attempt may cure (the retrying layer's business), another S3Error otherwise.
    func send(
        _ op: Operation, allow404: Bool = false,
        onBytesSent: (@Sendable (Int64) -> Void)? = nil
    ) async throws -> HTTPResponse {
        var correctedClock = false
        while true {
            let started = DispatchTime.now().uptimeNanoseconds
            let r: HTTPResponse
            do {
                r = try await http.perform(request(for: op), onBytesSent: onBytesSent)
            } catch let e as HTTPError {
                if case .bodyRead(let errno) = e {
                    throw S3Error.localRead(path: op.key ?? "", message: String(cString: strerror(errno)))
                }
                log?("\(op.name) \(op.key ?? op.bucket): \(e.description)")
                throw S3Error.transient(TransientFailure(operation: op.name, key: op.key ?? op.bucket, network: e.description))
            }
            let ms = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
            log?("\(op.method) \(op.name) \(op.key ?? op.bucket): HTTP \(r.status) in \(String(format: "%.0f", ms)) ms")
            if (200..<300).contains(r.status) || (allow404 && r.status == 404 && !isNoSuchBucket(r)) { return r }
            let text = r.bodyText
            var code = S3XML.value("Code", in: text) ?? Self.defaultCode(status: r.status)
            let message = S3XML.value("Message", in: text) ?? ""
            let serverDate = r.header("date").flatMap(Self.parseHTTPDate)
            // A HEAD's refusal has no body to say why: a 403 from a server whose clock is more than
            // S3's 15 minutes from ours is taken for the skew it most likely is.
            if text.isEmpty, r.status == 403, let serverDate, abs(serverDate.timeIntervalSince(now)) > 15 * 60 {
                code = "RequestTimeTooSkewed"
            }
            if code == "RequestTimeTooSkewed", !correctedClock, let serverDate {
                // Correct once from the server's clock, then send again at once.
                correctedClock = true
                clockOffset.value = serverDate.timeIntervalSinceNow
                continue
            }
            if let fatal = fatalError(op: op, status: r.status, code: code) { throw fatal }
            guard Self.isRetryable(status: r.status, code: code) else {
                throw S3Error.service(operation: op.name, key: op.key ?? op.bucket, status: r.status, code: code, message: message)
            }
            throw S3Error.transient(
                TransientFailure(operation: op.name, key: op.key ?? op.bucket, status: r.status, code: code, message: message))
        }
    }

    private func isNoSuchBucket(_ r: HTTPResponse) -> Bool {
        S3XML.value("Code", in: r.bodyText) == "NoSuchBucket"
    }

    private func fatalError(op: Operation, status: Int, code: String) -> S3Error? {
        if code == "NoSuchBucket" { return .noSuchBucket(bucket: op.bucket, endpoint: endpoint.description) }
        let denied: Set = [
            "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken",
            "ExpiredToken", "TokenRefreshRequired", "RequestTimeTooSkewed", "AuthorizationHeaderMalformed",
        ]
        if status == 403 || denied.contains(code) {
            return .accessDenied(bucket: op.bucket, code: code, credentialSource: credentials.source, endpoint: endpoint.description)
        }
        return nil
    }

    static func isRetryable(status: Int, code: String) -> Bool {
        // BadDigest and friends mean the bytes were damaged on the way: sending them again cures it.
        let transient: Set = [
            "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "BadDigest",
            "InvalidDigest", "XAmzContentSHA256Mismatch", "IncompleteBody", "RequestTimeTooSkewed",
        ]
        return status >= 500 || status == 429 || status == 408 || transient.contains(code)
    }

    static func defaultCode(status: Int) -> String {
        switch status {
        case 403: return "AccessDenied"
        case 404: return "NotFound"
        case 503: return "SlowDown"
        default: return "HTTP\(status)"
        }
    }

    static func parseHTTPDate(_ s: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: s)
    }
}
