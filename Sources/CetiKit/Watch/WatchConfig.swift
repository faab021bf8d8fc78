import Foundation
import Yams

/// The config file's `watch:` section: what `ceti watch` scans, how it decides a session is
/// complete, and whom it tells. Read from the same file as every other key (`ConfigFile.text`),
/// with every problem found at once, each naming its key and line (`validate-config` lists them).
///
///     watch:
///       interval: 60s
///       roots:
///         - {path: /srv/incoming/boat-drives, profile: tag_session, bucket: ceti-field-data, prefix: raw}
///       profiles:
///         tag_session: {session_depth: 1, required_markers: [session_summary.json], stable_for: 5m,
///                       ignore: ["*.tmp", ".*"], include_regex: "^wt-", compress: true,
///                       after_upload: move, max_age: 30d}
///       notify:
///         webhook_file: /etc/ceti/webhook      # or webhook: URL (a secret either way)
///         email: {smtp_url: smtps://mail.example:465, from: a@b, to: [c@d], user: u, password_file: F}
///         on: [complete, failed, stalled]
///         stall_after: 1h
public struct WatchConfig: Sendable, Equatable {
    public var intervalSeconds: Double = 60
    public var roots: [Root] = []
    public var profiles: [String: Profile] = [:]
    public var notify: NotifySettings?

    public struct Root: Sendable, Equatable {
        /// Absolute (`~` expanded).
        public var path: String
        public var profile: String
        /// nil: the top-level `bucket` / `prefix` (or the flags).
        public var bucket: String?
        public var prefix: String?
    }

    public struct Profile: Sendable, Equatable {
        /// Each folder this many levels below the root is one session.
        public var sessionDepth = 1
        /// Paths below the session folder that must all exist.
        public var requiredMarkers: [String] = []
        /// No size or mtime change in the session for this long.
        public var stableForSeconds: Double = 300
        /// Shell patterns matched against each file's name and its path below the session.
        public var ignore: [String] = []
        /// Only session folders whose name matches.
        public var includeRegex: String?
        public var compress = false
        public var afterUpload: AfterUpload = .keep
        /// Sessions whose newest file is older than this are reported, not uploaded.
        public var maxAgeSeconds: Double?
    }

    public enum AfterUpload: String, Sendable, Equatable, CaseIterable {
        /// To `<root>/processed/<session>`.
        case move
        case keep
        /// Each file deleted only with its own custody proof (a verified object S3 still holds).
        case deleteLocal = "delete-local"
    }

    /// One thing wrong in the section: where, and what to do.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var file: String
        public var line: Int?
        /// The key's path, e.g. `watch.profiles.tag_session.stable_for`.
        public var key: String
        public var message: String

        public var description: String { "config file \(file)\(line.map { ", line \($0)" } ?? ""): \(key): \(message)" }
    }

    /// Every problem of the section (exit status 2).
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var problems: [Problem]
        /// One line each, in the file's order (each line of the console's output starts `ceti: `).
        public var description: String {
            problems.sorted { ($0.line ?? 0) < ($1.line ?? 0) }.map(\.description).joined(separator: "\nceti: ")
        }
    }

    /// The section of `config`, checked; `Invalid` lists every problem.
    public static func load(_ config: ConfigFile) throws -> WatchConfig {
        let file = config.path ?? "(none)"
        guard let text = config.text else {
            throw Invalid(problems: [
                Problem(
                    file: config.path ?? ConfigFile.defaultPath(environment: ProcessInfo.processInfo.environment), line: nil,
                    key: "watch", message: "no config file with a `watch:` section; write one (see `ceti watch --help`) or give --config")
            ])
        }
        var reader = Reader(file: file, home: config.expandingTilde)
        let watch: Node?
        do {
            watch = try Yams.compose(yaml: text)?.mapping?[Node("watch")]
        } catch {
            throw Invalid(problems: [Problem(file: file, line: nil, key: "watch", message: "not valid YAML (\(error))")])
        }
        guard let watch, let section = reader.mapping(watch, "watch") else {
            if watch == nil {
                reader.problem(nil, "watch", "no `watch:` section; add one (see `ceti watch --help`)")
            }
            throw Invalid(problems: reader.problems)
        }
        let result = reader.watch(section)
        guard reader.problems.isEmpty else { throw Invalid(problems: reader.problems) }
        return result
    }

    /// `60`, `90s`, `5m`, `1h`, `30d` in seconds; nil when it is none of those.
    public static func seconds(_ text: String) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            if let n = Double(t.dropLast(suffix.count)), n >= 0, n.isFinite { return n * scale }
        }
        return Double(t).flatMap { $0 >= 0 && $0.isFinite ? $0 : nil }
    }

    /// Walks the section's nodes, collecting problems instead of stopping at the first.
    struct Reader {
        let file: String
        let home: (String) -> String
        var problems: [Problem] = []

        mutating func problem(_ node: Node?, _ key: String, _ message: String) {
            problems.append(Problem(file: file, line: node?.mark?.line, key: key, message: message))
        }

        /// The pairs of a mapping node by key, reporting keys not in `known`.
        mutating func mapping(_ node: Node, _ key: String, known: [String]? = nil) -> [(key: String, node: Node, value: Node)]? {
            guard case .mapping(let m) = node else {
                problem(node, key, "expected `key: value` lines below it")
                return nil
            }
            var out: [(String, Node, Node)] = []
            for (k, v) in m {
                guard let name = k.string else {
                    problem(k, key, "a key must be a name")
                    continue
                }
                if let known, !known.contains(name) {
                    problem(k, "\(key).\(name)", "unknown key; known here: \(known.joined(separator: ", "))")
                    continue
                }
                out.append((name, k, v))
            }
            return out
        }

        mutating func scalar(_ node: Node, _ key: String) -> String? {
            guard case .scalar(let s) = node else {
                problem(node, key, "expected a single value")
                return nil
            }
            return s.string
        }

        mutating func duration(_ node: Node, _ key: String) -> Double? {
            guard let text = scalar(node, key) else { return nil }
            guard let s = WatchConfig.seconds(text) else {
                problem(node, key, "'\(text)' is not a duration; give e.g. 90s, 5m, 1h or 30d")
                return nil
            }
            return s
        }

        mutating func bool(_ node: Node, _ key: String) -> Bool? {
            guard let text = scalar(node, key) else { return nil }
            switch text.lowercased() {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            default:
                problem(node, key, "'\(text)' is not true or false")
                return nil
            }
        }

        /// A list of names (a single value counts as a list of one).
        mutating func list(_ node: Node, _ key: String) -> [String]? {
            if case .scalar = node { return scalar(node, key).map { [$0] } }
            guard case .sequence(let items) = node else {
                problem(node, key, "expected a list, e.g. [a, b]")
                return nil
            }
            return items.compactMap { scalar($0, key) }
        }

        mutating func watch(_ pairs: [(key: String, node: Node, value: Node)]) -> WatchConfig {
            var config = WatchConfig()
            var rootNodes: [(Node, Node)] = []
            for (name, k, v) in pairs {
                let key = "watch." + name
                switch name {
                case "interval":
                    if let s = duration(v, key) {
                        if s < 1 { problem(v, key, "give at least 1s") } else { config.intervalSeconds = s }
                    }
                case "roots":
                    guard case .sequence(let items) = v else {
                        problem(v, key, "expected a list of roots, each `- path: FOLDER` with its `profile:`")
                        continue
                    }
                    if items.isEmpty { problem(v, key, "no root: give at least one `- path: FOLDER`") }
                    rootNodes = items.map { ($0, k) }
                case "profiles":
                    for (p, pk, pv) in mapping(v, key) ?? [] { config.profiles[p] = profile(pv, "\(key).\(p)", at: pk) }
                case "notify":
                    config.notify = notify(v, key)
                default:
                    problem(k, key, "unknown key; known here: interval, roots, profiles, notify")
                }
            }
            if !pairs.contains(where: { $0.key == "roots" }) { problem(nil, "watch.roots", "missing: give the folders to watch") }
            for (i, (node, _)) in rootNodes.enumerated() {
                guard let root = root(node, "watch.roots[\(i)]", profiles: config.profiles) else { continue }
                if config.roots.contains(where: { $0.path == root.path }) {
                    problem(node, "watch.roots[\(i)].path", "\(root.path) is listed twice")
                } else {
                    config.roots.append(root)
                }
            }
            return config
        }

        mutating func root(_ node: Node, _ key: String, profiles: [String: Profile]) -> Root? {
            let known = ["path", "profile", "bucket", "prefix"]
            guard let pairs = mapping(node, key, known: known) else { return nil }
            var path: String?, profile: String?, bucket: String?, prefix: String?
            for (name, _, v) in pairs {
                let value = scalar(v, "\(key).\(name)")
                switch name {
                case "path": path = value.map(home)
                case "profile": profile = value
                case "bucket": bucket = value
                default: prefix = value
                }
                if name == "profile", let value, profiles[value] == nil {
                    problem(v, "\(key).profile", "no profile '\(value)' under watch.profiles")
                }
            }
            guard let path, !path.isEmpty else {
                problem(node, "\(key).path", "missing: give the folder to watch")
                return nil
            }
            guard path.hasPrefix("/") else {
                problem(node, "\(key).path", "\(path) is not an absolute path; give the full path (or ~/…)")
                return nil
            }
            guard let profile else {
                problem(node, "\(key).profile", "missing: name one of watch.profiles")
                return nil
            }
            return Root(path: FileWalker.absolute(path), profile: profile, bucket: bucket, prefix: prefix)
        }

        mutating func profile(_ node: Node, _ key: String, at keyNode: Node) -> Profile {
            var p = Profile()
            let known = [
                "session_depth", "required_markers", "stable_for", "ignore", "include_regex", "compress", "after_upload", "max_age",
            ]
            for (name, _, v) in mapping(node, key, known: known) ?? [] {
                let k = "\(key).\(name)"
                switch name {
                case "session_depth":
                    if let text = scalar(v, k) {
                        if let n = Int(text), (1...8).contains(n) { p.sessionDepth = n } else { problem(v, k, "'\(text)': give 1 to 8") }
                    }
                case "required_markers":
                    if let l = list(v, k) {
                        for m in l where m.isEmpty || m.hasPrefix("/") || m.split(separator: "/").contains("..") {
                            problem(v, k, "'\(m)' must be a path inside the session folder")
                        }
                        p.requiredMarkers = l
                    }
                case "stable_for": p.stableForSeconds = duration(v, k) ?? p.stableForSeconds
                case "ignore": p.ignore = list(v, k) ?? []
                case "include_regex":
                    if let text = scalar(v, k) {
                        if (try? Regex(text)) == nil {
                            problem(v, k, "'\(text)' is not a regular expression")
                        } else {
                            p.includeRegex = text
                        }
                    }
                case "compress": p.compress = bool(v, k) ?? false
                case "after_upload":
                    if let text = scalar(v, k) {
                        if let a = AfterUpload(rawValue: text) {
                            p.afterUpload = a
                        } else {
                            problem(v, k, "'\(text)': give move, keep or delete-local")
                        }
                    }
                default: p.maxAgeSeconds = duration(v, k)
                }
            }
            return p
        }

        /// The secrets (webhook URL, SMTP password) are never quoted in a problem.
        mutating func notify(_ node: Node, _ key: String) -> NotifySettings? {
            let known = ["webhook", "webhook_file", "email", "on", "stall_after"]
            guard let pairs = mapping(node, key, known: known) else { return nil }
            var n = NotifySettings()
            for (name, _, v) in pairs {
                let k = "\(key).\(name)"
                switch name {
                case "webhook":
                    n.webhook = scalar(v, k)
                    if let url = n.webhook, !Self.isHTTPURL(url) {
                        problem(v, k, "not an http(s):// URL (its value is not shown: it is a secret)")
                    }
                case "webhook_file":
                    if let url = secret(v, k) {
                        if Self.isHTTPURL(url) { n.webhook = url } else { problem(v, k, "the file does not hold an http(s):// URL") }
                    }
                case "email": n.email = email(v, k)
                case "on":
                    var kinds = Set<WatchEvent.Kind>()
                    for e in list(v, k) ?? [] {
                        if let kind = WatchEvent.Kind(rawValue: e), kind != .test {
                            kinds.insert(kind)
                        } else {
                            problem(v, k, "'\(e)': give complete, failed or stalled")
                        }
                    }
                    n.on = kinds
                default:
                    if let s = duration(v, k) { n.stallAfterSeconds = s }
                }
            }
            if pairs.contains(where: { $0.key == "webhook" }) && pairs.contains(where: { $0.key == "webhook_file" }) {
                problem(node, "\(key).webhook", "give webhook or webhook_file, not both")
            }
            return n
        }

        mutating func email(_ node: Node, _ key: String) -> NotifySettings.Email? {
            let known = ["smtp_url", "from", "to", "user", "password_file"]
            guard let pairs = mapping(node, key, known: known) else { return nil }
            var url: String?, from: String?, to: [String] = [], user: String?, password: String?
            for (name, _, v) in pairs {
                let k = "\(key).\(name)"
                switch name {
                case "smtp_url":
                    url = scalar(v, k)
                    if let u = url, !(u.hasPrefix("smtp://") || u.hasPrefix("smtps://")) {
                        problem(v, k, "'\(u)': give smtp://HOST:PORT or smtps://HOST:PORT")
                    }
                case "from": from = scalar(v, k)
                case "to": to = list(v, k) ?? []
                case "user": user = scalar(v, k)
                default: password = secret(v, k)
                }
            }
            for (missing, name) in [(url == nil, "smtp_url"), (from == nil, "from"), (to.isEmpty, "to")] where missing {
                problem(node, "\(key).\(name)", "missing")
            }
            guard let url, let from, !to.isEmpty else { return nil }
            return NotifySettings.Email(smtpURL: url, from: from, to: to, user: user, password: password)
        }

        /// A secret read from the file a key names (its first line, trimmed).
        mutating func secret(_ node: Node, _ key: String) -> String? {
            guard let path = scalar(node, key).map(home) else { return nil }
            guard let data = FileManager.default.contents(atPath: path) else {
                problem(node, key, "cannot read \(path); give a readable file")
                return nil
            }
            let first = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            let value = first.trimmingCharacters(in: .whitespaces)
            if value.isEmpty { problem(node, key, "\(path) is empty") }
            return value.isEmpty ? nil : value
        }

        static func isHTTPURL(_ s: String) -> Bool {
            (s.hasPrefix("https://") || s.hasPrefix("http://")) && URL(string: s)?.host != nil
        }
    }
}
