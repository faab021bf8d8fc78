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
///     ledger: ~/ceti/ledger.sqlite
///
/// Read values through the typed accessors (`string`, `int`, `bool`, `path`): a value of the
/// wrong kind is a `ConfigError` naming the file, the line and the key (exit status 2), and a
/// path starting with `~` or `~/` is taken from `$HOME`. A check a caller makes of its own (a
/// range, a size) throws `invalid(key, …)` so that the error names the file, not a flag.
public struct ConfigFile: Sendable {
    /// Each key's value as written (scalars only; a YAML null such as `key:` or `key: ~` is absent).
    public var values: [String: String]
    public var path: String?
    /// The 1-based line each key is on, when read from a file.
    public var lines: [String: Int] = [:]
    /// Keys whose value is a list or a mapping (what it is, e.g. "a list"), which no key accepts.
    var shapes: [String: String] = [:]
    /// `$HOME` for `~` in paths (nil: this process's).
    public var home: String?
    /// The file's text, for the sections other parts read themselves (`watch:`, `WatchConfig`).
    public var text: String?

    public static let knownKeys: Set = [
        "bucket", "prefix", "key_template", "endpoint_url", "region", "profile",
        "jobs", "part_size", "bwlimit", "ledger", "watch", "qc",
    ]
    /// Keys that hold a whole section, read by their own parser (`WatchConfig`, `QCThresholds`).
    static let sectionKeys: Set = ["watch", "qc"]
    /// Keys read with `int`: checked when the file is loaded, so that no command runs on a
    /// configuration it would read differently from what the operator wrote.
    static let intKeys: Set = ["jobs"]
    /// Keys holding a path: `~` expanded by `path` and by the subscript. Names of path keys yet
    /// to come are listed too, so that they behave the same way once they are known.
    static let pathKeys: Set = ["ledger", "staging", "backup", "data_dir", "password_file", "identity", "registry"]

    public enum ConfigError: Error, CustomStringConvertible, Equatable {
        case unreadable(String, String)
        case invalid(String, String)
        /// A key's value: the file, the line (when known), the key and what is wrong with it.
        case value(path: String, line: Int?, key: String, message: String)
        public var description: String {
            switch self {
            case .unreadable(let p, let why): return "cannot read the config file \(p): \(why)"
            case .invalid(let p, let why): return "config file \(p): \(why)"
            case .value(let p, let line, let key, let message):
                return "config file \(p)\(line.map { ", line \($0)" } ?? ""): \(key): \(message)"
            }
        }
    }

    public init(values: [String: String] = [:], path: String? = nil, home: String? = nil) {
        self.values = values
        self.path = path
        self.home = home
    }

    public static func defaultPath(environment: [String: String]) -> String {
        let base =
            environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.config")
        return base + "/ceti/config.yaml"
    }

    /// Loads `explicit` (which must exist) or the default path (which may not).
    public static func load(explicit: String?, environment: [String: String]) throws -> ConfigFile {
        let path = explicit ?? defaultPath(environment: environment)
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
        guard FileManager.default.fileExists(atPath: path) else {
            if explicit != nil { throw ConfigError.unreadable(path, "no such file") }
            return ConfigFile(home: home)
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError.unreadable(path, "\(error.localizedDescription)")
        }
        var config = try parse(text, path: path)
        config.home = home
        return config
    }

    /// The configuration in `text`, as if read from `path`; every known key's kind checked.
    public static func parse(_ text: String, path: String) throws -> ConfigFile {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ConfigError.invalid(path, "not valid YAML (\(error))")
        }
        var config = ConfigFile(path: path)
        config.text = text
        guard let node, !isNull(node) else { return config }
        guard case .mapping(let map) = node else { throw ConfigError.invalid(path, "expected `key: value` lines") }
        for (k, v) in map {
            guard case .scalar(let keyScalar) = k, knownKeys.contains(keyScalar.string) else {
                let name = k.scalar?.string ?? "\(k.any)"
                throw ConfigError.invalid(
                    path,
                    "line \(k.mark?.line ?? 0): unknown key '\(name)'; known keys: "
                        + knownKeys.sorted().joined(separator: ", "))
            }
            let key = keyScalar.string
            if let line = k.mark?.line { config.lines[key] = line }
            if sectionKeys.contains(key) { continue }
            switch v {
            case .scalar(let s):
                if !isNull(v) { config.values[key] = s.string }
            case .sequence:
                config.shapes[key] = "a list"
            case .mapping:
                config.shapes[key] = "a mapping"
            }
        }
        for key in Set(config.values.keys).union(config.shapes.keys) {
            if intKeys.contains(key) { _ = try config.int(key) } else { _ = try config.string(key) }
        }
        return config
    }

    private static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let s) = node, s.style == .plain || s.style == .any else { return false }
        return node.null != nil
    }

    // MARK: - Typed accessors

    /// The key's value as text; nil when absent or empty. A list or a mapping is an error.
    public func string(_ key: String) throws -> String? {
        if let shape = shapes[key] {
            throw invalid(key, "expected a single value, found \(shape)")
        }
        return values[key].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The key's value as a whole number; nil when absent.
    public func int(_ key: String) throws -> Int? {
        guard let text = try string(key) else { return nil }
        guard let n = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw invalid(key, "\(text) is not a number; give a whole number, e.g. `\(key): 4`")
        }
        return n
    }

    /// The key's value as true or false (also yes/no, on/off); nil when absent.
    public func bool(_ key: String) throws -> Bool? {
        guard let text = try string(key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw invalid(key, "\(text) is not true or false; give `\(key): true` or `\(key): false`")
        }
    }

    /// The key's value as a path, `~` and `~/…` taken from `$HOME`; nil when absent.
    public func path(_ key: String) throws -> String? {
        try string(key).map(expandingTilde)
    }

    /// The key's value as written (a path key's with `~` expanded), without checking its kind:
    /// `load` has already checked every known key's.
    public subscript(_ key: String) -> String? {
        guard let v = values[key] else { return nil }
        return Self.pathKeys.contains(key) ? expandingTilde(v) : v
    }

    /// The error for a key whose value the caller found wrong: names the file, the line and the key.
    public func invalid(_ key: String, _ message: String) -> ConfigError {
        .value(path: path ?? "(defaults)", line: lines[key], key: key, message: message)
    }

    /// `~` → `$HOME`, `~/x` → `$HOME/x`; anything else (`~user/…` included) as it is.
    public func expandingTilde(_ p: String) -> String {
        guard p == "~" || p.hasPrefix("~/") else { return p }
        var h = home ?? ProcessInfo.processInfo.environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        while h.count > 1 && h.hasSuffix("/") { h.removeLast() }
        return h + p.dropFirst()
    }
}
