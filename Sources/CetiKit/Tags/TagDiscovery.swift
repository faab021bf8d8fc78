import Foundation

/// A tag found on the LAN, with what the ledger knows of its files.
public struct DiscoveredTag: Sendable, Codable, Equatable {
    public var name: String
    public var address: String
    public var files: Int
    public var bytes: Int64
    public var pulled: Int
    public var uploaded: Int
}

public enum DiscoveryError: Error, CustomStringConvertible {
    case notATag(address: String, name: String)
    public var description: String {
        switch self {
        case .notATag(let address, let name): return "\(address) is \(name), not a whale tag"
        }
    }
}

/// Finds tags: SSH banners on the scanned networks, then each host's name (reverse lookup, else
/// `hostname` after logging in), keeping `wt-…` names, one entry per name, reached by address.
struct TagDiscovery {
    let puller: TagPuller
    let options: PullOptions
    let console: Console

    func discover(_ subnets: [Subnet], pool: BlockingPool) async throws -> [DiscoveredTag] {
        let own = Set(Subnet.ownAddresses())
        let addresses = subnets.flatMap(\.hosts).filter { !own.contains($0) }
        console.info("scanning \(subnets.map(\.description).joined(separator: ", ")) (\(addresses.count) addresses) for SSH on port \(options.port)")
        let port = options.port
        let ssh = try await pool.run { SSHScanner.scan(addresses, port: port) }
        console.verbose("SSH answers at: \(ssh.joined(separator: ", "))")
        var found: [DiscoveredTag] = []
        try await withThrowingTaskGroup(of: DiscoveredTag?.self) { group in
            for address in ssh {
                group.addTask { [self] in try await pool.run { identify(address) } }
            }
            for try await tag in group { if let tag { found.append(tag) } }
        }
        // One entry per tag name, even when a tag answers on two addresses.
        var byName: [String: DiscoveredTag] = [:]
        for t in found.sorted(by: { $0.address < $1.address }) where byName[t.name] == nil { byName[t.name] = t }
        return byName.values.sorted { $0.name < $1.name }
    }

    /// Logs in (a reverse-lookup name, when it is a tag's, is checked against the pinned key first)
    /// and counts the tag's files; nil for a host that is not a tag or cannot be reached.
    private func identify(_ address: String) -> DiscoveredTag? {
        let reverse = Self.reverseName(address).flatMap { TagPuller.isTagName($0) ? $0 : nil }
        do {
            let (session, name, now) = try puller.open(address: address, expectedName: reverse, tagsOnly: true)
            let sftp = try SFTPClient(session: session)
            let remoteDir = options.remoteDir
            var tag = DiscoveredTag(name: name, address: address, files: 0, bytes: 0, pulled: 0, uploaded: 0)
            for f in try sftp.list(remoteDir) where f.isRegular && f.mtime <= now - options.settleSeconds {
                tag.files += 1
                tag.bytes += f.size
                if let copy = try puller.ledger.copy(device: name, remotePath: remoteDir + "/" + f.name, size: f.size, mtime: f.mtime) {
                    tag.pulled += 1
                    // The ledger's word only (-l asks S3 nothing): this file's own chain, in any bucket.
                    if try !puller.ledger.objectsProving(copy, bucket: nil).isEmpty { tag.uploaded += 1 }
                }
            }
            return tag
        } catch let e as DiscoveryError {
            console.verbose("\(e)")
        } catch {
            console.error("\(address): \(error)")
        }
        return nil
    }

    /// The PTR name of an address, without asking anything but the system resolver.
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
        let bytes = host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self).split(separator: ".").first.map(String.init)
    }
}
