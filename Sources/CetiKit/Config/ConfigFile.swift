import Foundation
import Yams

/// `$XDG_CONFIG_HOME/ceti/config.yaml` (or `--config`): defaults for flags, below flags and
/// environment variables. Flat keys, e.g.
///
///     bucket: ceti-field-data
///     endpoint_url: http://127.0.0.1:8333
///     region: us-east-1
///     prefix: raw
///     jobs: 4
///     bwlimit: 2M
public struct ConfigFile: Sendable {
    public var values: [String: String]
    public var path: String?

    public static let knownKeys: Set = ["bucket", "prefix", "key_template", "endpoint_url", "region", "profile",
                                        "jobs", "part_size", "bwlimit", "ledger"]

    public enum ConfigError: Error, CustomStringConvertible {
        case unreadable(String, String)
        case invalid(String, String)
        public var description: String {
            switch self {
            case .unreadable(let p, let why): return "cannot read the config file \(p): \(why)"
            case .invalid(let p, let why): return "config file \(p): \(why)"
            }
        }
    }

    public init(values: [String: String] = [:], path: String? = nil) {
        self.values = values
        self.path = path
    }

    public static func defaultPath(environment: [String: String]) -> String {
        let base = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.config")
        return base + "/ceti/config.yaml"
    }

    /// Loads `explicit` (which must exist) or the default path (which may not).
    public static func load(explicit: String?, environment: [String: String]) throws -> ConfigFile {
        let path = explicit ?? defaultPath(environment: environment)
        guard FileManager.default.fileExists(atPath: path) else {
            if explicit != nil { throw ConfigError.unreadable(path, "no such file") }
            return ConfigFile()
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError.unreadable(path, "\(error.localizedDescription)")
        }
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch {
            throw ConfigError.invalid(path, "not valid YAML (\(error))")
        }
        guard let node else { return ConfigFile(path: path) }
        guard let map = node as? [String: Any] else { throw ConfigError.invalid(path, "expected `key: value` lines") }
        var values: [String: String] = [:]
        for (k, v) in map {
            guard knownKeys.contains(k) else {
                throw ConfigError.invalid(path, "unknown key '\(k)'; known keys: \(knownKeys.sorted().joined(separator: ", "))")
            }
            values[k] = "\(v)"
        }
        return ConfigFile(values: values, path: path)
    }

    public subscript(_ key: String) -> String? { values[key] }
}
