import Foundation

/// Where requests go: a custom endpoint (path-style, as SeaweedFS, MinIO and the tests need) or
/// AWS itself (virtual-host style, path-style only for bucket names that cannot be host names).
public struct S3Endpoint: Sendable, Equatable {
    public var scheme: String
    /// host[:port] as sent in the Host header.
    public var authority: String
    public var pathStyle: Bool
    public var isAWS: Bool

    public static func aws(region: String) -> S3Endpoint {
        S3Endpoint(scheme: "https", authority: "s3.\(region).amazonaws.com", pathStyle: false, isAWS: true)
    }

    /// Parses `--endpoint-url`; nil when it is not an http(s) URL with a host.
    public init?(url: String) {
        guard let c = URLComponents(string: url), let scheme = c.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = c.host, !host.isEmpty
        else { return nil }
        let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        self.scheme = scheme
        self.authority = c.port.map { "\(bracketed):\($0)" } ?? bracketed
        self.pathStyle = true
        self.isAWS = false
    }

    init(scheme: String, authority: String, pathStyle: Bool, isAWS: Bool) {
        self.scheme = scheme
        self.authority = authority
        self.pathStyle = pathStyle
        self.isAWS = isAWS
    }

    public var description: String { "\(scheme)://\(authority)" }

    /// Host header, canonical path (encoded exactly as sent) and the URL without its query.
    func locate(bucket: String, key: String?) -> (host: String, path: String, base: String) {
        let virtualHost = !pathStyle && !bucket.contains(".")
        let host = virtualHost ? "\(bucket).\(authority)" : authority
        let path = S3URI.encodePath(key ?? "", bucket: virtualHost ? nil : bucket)
        return (host, path, "\(scheme)://\(host)\(path)")
    }
}
