import Foundation

/// A tag found on the LAN, with what the ledger knows of its files.
public struct DiscoveredTag: Sendable, Codable, Equatable {
    /// Its hostname; "?" when a host that may be a tag could not be identified (see `problem`).
    public var name: String
    public var address: String
    public var files: Int
    public var bytes: Int64
    public var pulled: Int
    public var uploaded: Int
    /// Why the tag could not be read (a refused login, a changed host key, a lost connection):
    /// it is listed all the same, and the command exits 1.
    public var problem: String?

    public init(
        name: String, address: String, files: Int = 0, bytes: Int64 = 0, pulled: Int = 0, uploaded: Int = 0,
        problem: String? = nil
    ) {
        self.name = name
        self.address = address
        self.files = files
        self.bytes = bytes
        self.pulled = pulled
        self.uploaded = uploaded
        self.problem = problem
    }

    /// What to pull: by name when the name is known, so its pinned key is checked before logging in.
    public var target: TagTarget { TagTarget(address: address, name: name == "?" ? nil : name) }

    /// For the `found N tag(s): ...` line.
    public var summary: String { "\(name) (\(address))" + (problem == nil ? "" : " [could not be read]") }
}

public enum DiscoveryError: Error, CustomStringConvertible {
    case notATag(address: String, name: String)
    public var description: String {
        switch self {
        case .notATag(let address, let name): return "\(address) is \(name), not a whale tag"
        }
    }
}

/// Finds tags: SSH banners on the scanned networks, then each host's name, keeping `wt-…`
/// names, one entry per name, reached by address.
///
/// What is sent to whom: every scanned address gets a TCP connection to the SSH port (nothing is
/// written; the banner is read and the connection closed). Each address that answered with an SSH
/// banner is named by the system resolver (getnameinfo: /etc/hosts, DNS PTR, mDNS where nss-mdns
/// is configured) and, when that finds nothing, by an mDNS PTR question sent to the host itself
/// (UDP port 5353). Then:
/// - a `wt-…` name: SSH; a host key pinned for another key under that name stops it before any
///   login; else the login (user and password or key) and `hostname; date +%s`;
/// - another name (`laptop`, `router.local`): no login. Only when known_hosts pins keys, an SSH
///   key exchange (no user name, no password) shows whether it presents a key pinned to a tag;
///   if it does, it is logged in to as that tag;
/// - no name at all: the login, then `hostname` decides (not a tag: left at once, nothing pinned).
/// A tag that refuses the login or presents a changed key is listed with its problem.
struct TagDiscovery {
    let connector: SSHTagConnector
    let ledger: Ledger
    let options: PullOptions
    let console: Console

    func discover(_ subnets: [Subnet], pool: BlockingPool) async throws -> [DiscoveredTag] {
        let own = Set(Subnet.ownAddresses())
        let addresses = subnets.flatMap(\.hosts).filter { !own.contains($0) }
        console.info(
            "scanning \(subnets.map(\.description).joined(separator: ", ")) (\(addresses.count) addresses) for SSH on port \(options.port)")
        let port = options.port
        let ssh = try await pool.run { SSHScanner.scan(addresses, port: port) }
        console.verbose("SSH answers at: \(ssh.joined(separator: ", "))")
        // Names first, without logging in anywhere.
        var names: [String: String] = [:]
        try await withThrowingTaskGroup(of: (String, String?).self) { group in
            for address in ssh {
                group.addTask { try await pool.run { (address, Self.reverseName(address)) } }
            }
            for try await (address, name) in group { if let name { names[address] = name } }
        }
        let unnamed = ssh.filter { names[$0] == nil }
        if !unnamed.isEmpty {
            for (address, name) in try await pool.run({ Self.mdnsNames(unnamed) }) { names[address] = name }
        }
        for address in ssh { console.verbose("\(address): \(names[address].map { "named \($0)" } ?? "no name found")") }
        var found: [DiscoveredTag] = []
        try await withThrowingTaskGroup(of: DiscoveredTag?.self) { group in
            for address in ssh {
                let learned = names[address]
                group.addTask { [self] in try await pool.run { identify(address, learned: learned) } }
            }
            for try await tag in group { if let tag { found.append(tag) } }
        }
        // One entry per tag name, even when a tag answers on two addresses (a readable one first);
        // hosts that could not be identified stay one entry per address.
        var byName: [String: DiscoveredTag] = [:]
        for t in found.sorted(by: { ($0.problem != nil ? 1 : 0, $0.address) < ($1.problem != nil ? 1 : 0, $1.address) }) {
            let key = t.name == "?" ? "?" + t.address : t.name
            if byName[key] == nil { byName[key] = t }
        }
        return byName.values.sorted { ($0.name, $0.address) < ($1.name, $1.address) }
    }

    /// Logs in where the rules above allow it and counts the tag's files; nil for a host that is
    /// not a tag; a tag (or an unnamed host that may be one) that cannot be read comes back with
    /// its problem.
    private func identify(_ address: String, learned: String?) -> DiscoveredTag? {
        let label = learned.flatMap { $0.split(separator: ".").first.map(String.init) }
        var expected = label.flatMap { SSHTagConnector.isTagName($0) ? $0 : nil }
        if let learned, expected == nil {
            // A host with a name that is not a tag's: never sent the password, unless it proves to be
            // a known tag by presenting a host key pinned for one.
            guard connector.knownHosts.hasEntries else {
                console.verbose("\(address) is \(learned), not a whale tag: not logged in")
                return nil
            }
            do {
                let probe = try SSHSession(host: address, port: options.port)
                guard let pinned = connector.knownHosts.name(forKey: probe.hostKey.base64) else {
                    console.verbose("\(address) is \(learned), not a whale tag (its host key is pinned for no tag): not logged in")
                    return nil
                }
                console.verbose("\(address) is named \(learned) but presents the host key pinned for \(pinned)")
                expected = pinned
            } catch {
                console.verbose("\(address) is \(learned), not a whale tag: \(error)")
                return nil
            }
        }
        do {
            let connection = try connector.open(TagTarget(address: address), expectedName: expected, tagsOnly: true)
            let (name, now) = (connection.name, connection.now)
            let remoteDir = options.remoteDir
            var tag = DiscoveredTag(name: name, address: address)
            for f in try connection.list(remoteDir) where f.isRegular && f.mtime <= now - options.settleSeconds {
                tag.files += 1
                tag.bytes += f.size
                if let copy = try ledger.copy(device: name, remotePath: remoteDir + "/" + f.name, size: f.size, mtime: f.mtime) {
                    tag.pulled += 1
                    // The ledger's word only (-l asks S3 nothing): this file's own chain, in any bucket.
                    if try !ledger.objectsProving(copy, bucket: nil).isEmpty { tag.uploaded += 1 }
                }
            }
            return tag
        } catch let e as DiscoveryError {
            console.verbose("\(e)")
            return nil
        } catch {
            var name = expected ?? "?"
            if case SSHError.hostKeyChanged(let pinned, _, _, _, _) = error { name = pinned }
            let text = "\(error)"
            return DiscoveredTag(name: name, address: address, problem: text.contains(address) ? text : "\(address): \(text)")
        }
    }

    /// The name the system resolver gives an address (getnameinfo: /etc/hosts, DNS PTR, and mDNS
    /// where nss-mdns is configured), e.g. `wt-1a2b3c4d.local`; nil when it knows none.
    static func reverseName(_ address: String) -> String? {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        guard inet_pton(AF_INET, address, &sin.sin_addr) == 1 else { return nil }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0, NI_NAMEREQD)
            }
        }
        guard rc == 0 else { return nil }
        let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? nil : name
    }

    /// Names by mDNS, asked of each host itself: a PTR question for its reverse name
    /// (`d.c.b.a.in-addr.arpa`) sent by unicast to ADDRESS:5353 from an ephemeral port, which an
    /// mDNS responder (avahi on Raspberry Pi OS) answers directly to that port (RFC 6762 §6.7).
    /// Waits up to `timeout` seconds for all of them; hosts that do not answer have no name.
    static func mdnsNames(_ addresses: [String], timeout: Double = 1) -> [String: String] {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return [:] }
        defer { close(fd) }
        var pending: [UInt16: (address: String, raw: in_addr)] = [:]
        for (i, address) in addresses.enumerated() {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = in_port_t(UInt16(5353).bigEndian)
            guard inet_pton(AF_INET, address, &sin.sin_addr) == 1 else { continue }
            let id = UInt16(truncatingIfNeeded: i + 1)
            var query: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
            for label in address.split(separator: ".").reversed().map(String.init) + ["in-addr", "arpa"] {
                query.append(UInt8(label.utf8.count))
                query += Array(label.utf8)
            }
            query += [0, 0, 12, 0, 1]  // root, type PTR, class IN
            let sent = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, query, query.count, Int32(MSG_NOSIGNAL), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if sent == query.count { pending[id] = (address, sin.sin_addr) }
        }
        var names: [String: String] = [:]
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 9000)
        while !pending.isEmpty, Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { continue }
            var from = sockaddr_in()
            var fromLength = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &fromLength) }
            }
            guard n >= 12 else { continue }
            let packet = Array(buffer[0..<n])
            let id = UInt16(packet[0]) << 8 | UInt16(packet[1])
            // Only the host asked may name itself.
            guard let asked = pending[id], asked.raw.s_addr == from.sin_addr.s_addr, packet[2] & 0x80 != 0,
                let name = ptrAnswer(packet), !name.isEmpty, name.utf8.allSatisfy({ (33..<127).contains($0) })
            else { continue }
            names[asked.address] = name
            pending[id] = nil
        }
        return names
    }

    /// The first PTR answer's target name in a DNS response, without the trailing dot.
    static func ptrAnswer(_ p: [UInt8]) -> String? {
        func u16(_ i: Int) -> Int? { i + 1 < p.count ? Int(p[i]) << 8 | Int(p[i + 1]) : nil }
        /// Reads a (possibly compressed) name at `start`; returns it and the offset after it in place.
        func name(at start: Int) -> (String, Int)? {
            var labels: [String] = []
            var i = start
            var end: Int?
            var jumps = 0
            while i < p.count {
                let length = Int(p[i])
                if length == 0 { return (labels.joined(separator: "."), end ?? i + 1) }
                if length & 0xc0 == 0xc0 {
                    guard let target = u16(i), jumps < 32 else { return nil }
                    if end == nil { end = i + 2 }
                    i = target & 0x3fff
                    jumps += 1
                    continue
                }
                guard length < 64, i + 1 + length <= p.count else { return nil }
                labels.append(String(decoding: p[(i + 1)..<(i + 1 + length)], as: UTF8.self))
                i += 1 + length
            }
            return nil
        }
        guard let questions = u16(4), let answers = u16(6) else { return nil }
        var i = 12
        for _ in 0..<questions {
            guard let (_, next) = name(at: i) else { return nil }
            i = next + 4
        }
        for _ in 0..<answers {
            guard let (_, next) = name(at: i), let type = u16(next), let length = u16(next + 8) else { return nil }
            let data = next + 10
            guard data + length <= p.count else { return nil }
            if type == 12, let (target, _) = name(at: data) { return target }
            i = data + length
        }
        return nil
    }
}
