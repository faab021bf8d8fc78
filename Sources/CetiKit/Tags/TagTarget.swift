import Foundation

/// A tag to pull, as given with -t (`wt-1a2b3c4d`, `10.0.0.5`, `10.0.0.5:2222`, `[fe80::1]:2222`)
/// or as found by discovery. A name given by the operator is the tag's identity; for an address
/// the name is learned from `hostname`.
public struct TagTarget: Sendable, Equatable {
    public var address: String
    /// nil: --port (22 unless told otherwise).
    public var port: Int?
    public var name: String?

    public init(address: String, port: Int? = nil, name: String? = nil) {
        self.address = address
        self.port = port
        self.name = name
    }

    /// As the operator would write it with -t.
    public var description: String {
        guard let port else { return address }
        return address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    public static func parse(_ text: String) throws -> TagTarget {
        var host = text
        var port: Int?
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()) else {
                    throw UsageError("-t \(text): give HOST, HOST:PORT or [IPv6]:PORT")
                }
                port = p
            }
        } else if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") {
            host = String(text[..<colon])
            guard let p = Int(text[text.index(after: colon)...]) else {
                throw UsageError("-t \(text): the port after ':' must be a number")
            }
            port = p
        }
        if let port, !(1...65535).contains(port) { throw UsageError("-t \(text): ports run from 1 to 65535") }
        guard !host.isEmpty else { throw UsageError("-t \(text): give a tag's hostname or address") }
        return TagTarget(address: host, port: port, name: Self.isAddress(host) ? nil : host)
    }

    /// An IPv4 or IPv6 address (not a name).
    static func isAddress(_ s: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }
}
