import Foundation

/// An IPv4 network to scan for tags.
public struct Subnet: Sendable, Equatable, CustomStringConvertible {
    public let network: UInt32
    public let prefix: Int

    public init(network: UInt32, prefix: Int) {
        let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix)
        self.network = network & mask
        self.prefix = prefix
    }

    /// "10.77.0.0/24" (a host address is fine: "10.77.0.5/24" means the same network).
    public init?(cidr: String) {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let prefix = Int(parts[1]), (16...32).contains(prefix),
            let address = Self.parse(String(parts[0]))
        else { return nil }
        self.init(network: address, prefix: prefix)
    }

    public var description: String { "\(Self.format(network))/\(prefix)" }

    /// Every host address (not the network or broadcast address of a /30 or wider).
    public var hosts: [UInt32] {
        let size = UInt32(1) << UInt32(32 - prefix)
        if size <= 2 { return (0..<size).map { network + $0 } }
        return (1..<(size - 1)).map { network + $0 }
    }

    static func parse(_ s: String) -> UInt32? {
        var a = in_addr()
        guard inet_pton(AF_INET, s, &a) == 1 else { return nil }
        return UInt32(bigEndian: a.s_addr)
    }

    static func format(_ v: UInt32) -> String {
        "\(v >> 24).\((v >> 16) & 0xff).\((v >> 8) & 0xff).\(v & 0xff)"
    }

    /// The networks to scan by default: each up, non-loopback IPv4 interface's own network (the
    /// /24 around its address when the network is wider than /22), and the /24 around each
    /// IPv4 default gateway.
    public static func automatic() -> [Subnet] {
        var out = interfaces().filter { $0.up && !$0.loopback }
            .map { Subnet(network: $0.address, prefix: $0.prefix < 22 ? 24 : $0.prefix) }
        out += defaultGateways().map { Subnet(network: $0, prefix: 24) }
        var seen = Set<String>()
        return out.filter { seen.insert($0.description).inserted }
    }

    /// This machine's own IPv4 addresses (never scanned: the laptop is not a tag).
    static func ownAddresses() -> [UInt32] { interfaces().map(\.address) }

    private static func interfaces() -> [(address: UInt32, prefix: Int, up: Bool, loopback: Bool)] {
        var out: [(UInt32, Int, Bool, Bool)] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var p = list
        while let ifa = p {
            p = ifa.pointee.ifa_next
            guard let addr = ifa.pointee.ifa_addr, addr.pointee.sa_family == sa_family_t(AF_INET),
                let mask = ifa.pointee.ifa_netmask
            else { continue }
            func ipv4(_ sa: UnsafeMutablePointer<sockaddr>) -> UInt32 {
                sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
            }
            let flags = Int32(ifa.pointee.ifa_flags)
            out.append((ipv4(addr), ipv4(mask).nonzeroBitCount, flags & Int32(IFF_UP) != 0, flags & Int32(IFF_LOOPBACK) != 0))
        }
        return out
    }

    /// IPv4 default gateways from /proc/net/route (little-endian hex).
    static func defaultGateways() -> [UInt32] {
        guard let text = try? String(contentsOfFile: "/proc/net/route", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard f.count > 2, f[1] == "00000000", let g = UInt32(f[2], radix: 16), g != 0 else { return nil }
            return g.byteSwapped
        }
    }
}
