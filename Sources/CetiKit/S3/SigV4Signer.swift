import Foundation

/// AWS Signature Version 4 in the Authorization header, as S3 wants it: the path is signed exactly as
/// sent (no normalization, no second encoding) and `x-amz-content-sha256` is added and signed.
/// Mirrors botocore's `S3SigV4Auth`, which the tests compare against.
public struct SigV4Signer: Sendable {
    public let credentials: AWSCredentials
    public let region: String
    public let service: String
    /// False gives generic SigV4 (AWS's test suite, other services): `x-amz-content-sha256` is neither
    /// added nor signed unless the caller passes it.
    let addsContentSHA256: Bool

    /// Headers never signed: hop-by-hop headers and ones proxies or the HTTP stack may change.
    /// Same list as botocore's `SIGNED_HEADERS_BLACKLIST`.
    static let unsignedHeaders: Set<String> = [
        "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
    ]

    public init(credentials: AWSCredentials, region: String, service: String = "s3") {
        self.init(credentials: credentials, region: region, service: service, addsContentSHA256: true)
    }

    init(credentials: AWSCredentials, region: String, service: String, addsContentSHA256: Bool) {
        self.credentials = credentials
        self.region = region
        self.service = service
        self.addsContentSHA256 = addsContentSHA256
    }

    /// Returns the headers to add to the request: "Authorization", "x-amz-date", "x-amz-content-sha256",
    /// and "x-amz-security-token" when the credentials have a session token. Any of these in `headers`
    /// are replaced, not signed twice.
    ///
    /// `path` is the canonical URI exactly as sent (already percent-encoded, e.g. by `S3URI.encodePath`);
    /// `query` holds decoded name/value pairs; `headers` are the headers that will be sent and must include
    /// "host" (names in any case; "content-length" is signed when present, `unsignedHeaders` never are);
    /// `payloadSHA256` is the lowercase hex SHA-256 of the body, or "UNSIGNED-PAYLOAD".
    public func sign(
        method: String, path: String, query: [(String, String)], headers: [(String, String)],
        payloadSHA256: String, date: Date
    ) -> [(String, String)] {
        signature(
            method: method, path: path, query: query, headers: headers,
            payloadSHA256: payloadSHA256, date: date
        ).addedHeaders
    }

    /// Every intermediate value of one signature, for tests and debugging.
    struct Signature {
        var canonicalRequest: String
        var stringToSign: String
        var authorization: String
        var addedHeaders: [(String, String)]
    }

    func signature(
        method: String, path: String, query: [(String, String)], headers: [(String, String)],
        payloadSHA256: String, date: Date
    ) -> Signature {
        let amzDate = Self.amzDate(date)
        let day = String(amzDate.prefix(8))

        var added: [(String, String)] = [("x-amz-date", amzDate)]
        if addsContentSHA256 { added.append(("x-amz-content-sha256", payloadSHA256)) }
        if let token = credentials.sessionToken { added.append(("x-amz-security-token", token)) }
        // Like botocore, values the signer owns replace whatever the caller passed.
        let replaced = Set(added.map { $0.0 }).union(["authorization"])
        let sent = headers.filter { !replaced.contains($0.0.lowercased()) } + added
        precondition(sent.contains { $0.0.lowercased() == "host" }, "SigV4Signer: the headers must include host")

        let (canonical, signedHeaders) = Self.canonicalRequest(
            method: method, path: path, query: query, headers: sent, payloadSHA256: payloadSHA256)
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let toSign = Self.stringToSign(canonicalRequest: canonical, amzDate: amzDate, scope: scope)

        var key = Digest.hmacSHA256(key: Array("AWS4\(credentials.secretAccessKey)".utf8), data: Array(day.utf8))
        for part in [region, service, "aws4_request"] {
            key = Digest.hmacSHA256(key: key, data: Array(part.utf8))
        }
        let signature = Digest.hmacSHA256(key: key, data: Array(toSign.utf8)).hex
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return Signature(
            canonicalRequest: canonical, stringToSign: toSign, authorization: authorization,
            addedHeaders: [("Authorization", authorization)] + added)
    }

    /// The canonical request and its signed-headers list. `headers` must already hold everything signed
    /// (x-amz-date etc.); names in `unsignedHeaders` are left out.
    static func canonicalRequest(
        method: String, path: String, query: [(String, String)],
        headers: [(String, String)], payloadSHA256: String
    )
        -> (canonicalRequest: String, signedHeaders: String)
    {
        let canonicalQuery =
            query
            .map { (S3URI.encode($0.0, encodeSlash: true), S3URI.encode($0.1, encodeSlash: true)) }
            .sorted { $0.0 != $1.0 ? utf8Less($0.0, $1.0) : utf8Less($0.1, $1.1) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")

        // Duplicate names are joined with commas in the order they were given.
        var values: [String: [String]] = [:]
        for (name, value) in headers {
            let lower = name.lowercased()
            guard !unsignedHeaders.contains(lower) else { continue }
            values[lower, default: []].append(trimAll(value))
        }
        let names = values.keys.sorted(by: utf8Less)
        let canonicalHeaders = names.map { "\($0):\(values[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")

        let canonical = [
            method.uppercased(), path.isEmpty ? "/" : path, canonicalQuery,
            canonicalHeaders, signedHeaders, payloadSHA256,
        ].joined(separator: "\n")
        return (canonical, signedHeaders)
    }

    static func stringToSign(canonicalRequest: String, amzDate: String, scope: String) -> String {
        ["AWS4-HMAC-SHA256", amzDate, scope, Digest.sha256(Array(canonicalRequest.utf8)).hex]
            .joined(separator: "\n")
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC, fractional seconds dropped.
    static func amzDate(_ date: Date) -> String { Timestamp.compact(date) }

    /// SigV4's Trimall: outer whitespace removed, inner runs of whitespace become one space
    /// (botocore: `' '.join(value.split())`).
    static func trimAll(_ value: String) -> String {
        value.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }

    /// SigV4 sorts by byte value; Swift's `<` on String compares Unicode scalars after normalization.
    static func utf8Less(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}

public enum S3URI {
    /// RFC 3986 encoding as S3 wants it: unreserved A-Z a-z 0-9 - _ . ~ kept, everything else %XX
    /// (uppercase hex) of its UTF-8 bytes; '/' kept when `encodeSlash` is false.
    public static func encode(_ s: String, encodeSlash: Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count)
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where !encodeSlash:
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0f)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// "/" + bucket + "/" + key for path-style addressing, "/" + key when `bucket` is nil (virtual-host
    /// style); the key is encoded with its slashes kept, and never normalized ("a//b/../c" stays as is).
    public static func encodePath(_ key: String, bucket: String?) -> String {
        let encodedKey = encode(key, encodeSlash: false)
        guard let bucket else { return "/" + encodedKey }
        return "/" + encode(bucket, encodeSlash: true) + "/" + encodedKey
    }
}
