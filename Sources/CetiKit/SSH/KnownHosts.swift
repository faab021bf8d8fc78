import Foundation

/// Tag host keys, trusted on first use and pinned per tag name:
/// `$XDG_CONFIG_HOME/ceti/known_hosts`, one `name key-type base64` line per tag.
public final class KnownHosts: @unchecked Sendable {
    public let path: String
    private let lock = NSLock()

    public enum Verdict: Equatable {
        case trusted
        /// Never seen: pin it.
        case new
        /// Another key is pinned for this name.
        case changed(pinnedFingerprint: String)
    }

    public init(path: String) {
        self.path = path
    }

    public static func defaultPath(environment: [String: String]) -> String {
        ((ConfigFile.defaultPath(environment: environment) as NSString).deletingLastPathComponent as String) + "/known_hosts"
    }

    private func entries() -> [(name: String, type: String, key: String)] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count >= 3, !line.hasPrefix("#") else { return nil }
            return (String(f[0]), String(f[1]), String(f[2]))
        }
    }

    public func verdict(name: String, type: String, key: String) -> Verdict {
        lock.withLock {
            guard let pinned = entries().first(where: { $0.name == name }) else { return .new }
            if pinned.type == type && pinned.key == key { return .trusted }
            let blob = Data(base64Encoded: pinned.key).map { [UInt8]($0) } ?? []
            return .changed(pinnedFingerprint: "SHA256:" + Digest.sha256(blob).base64.replacingOccurrences(of: "=", with: ""))
        }
    }

    /// Whether any key is pinned at all.
    public var hasEntries: Bool {
        lock.withLock { !entries().isEmpty }
    }

    /// The tag name this exact key is pinned for, if any.
    public func name(forKey key: String) -> String? {
        lock.withLock { entries().first { $0.key == key }?.name }
    }

    /// Pins (or re-pins, replacing the old line) a tag's key. Written to a temporary file and
    /// renamed, so a crash never leaves a half-written file.
    public func pin(name: String, type: String, key: String) throws {
        try lock.withLock {
            var lines = entries().filter { $0.name != name }.map { "\($0.name) \($0.type) \($0.key)" }
            lines.append("\(name) \(type) \(key)")
            let dir = (path as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let tmp = path + ".tmp"
            try (lines.joined(separator: "\n") + "\n").write(toFile: tmp, atomically: false, encoding: .utf8)
            chmod(tmp, 0o600)
            guard rename(tmp, path) == 0 else {
                throw SSHError.protocolError(
                    host: name, operation: "pinning its host key in \(path)", message: String(cString: strerror(errno)))
            }
        }
    }
}
