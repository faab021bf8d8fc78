/// Builds object keys from `--key-template`, e.g. "{prefix}/{date}/{device}/{path}".
public struct KeyTemplate: Sendable, Equatable {
    public static let placeholders: Set = ["prefix", "date", "device", "path", "name"]
    public static let `default` = "{prefix}/{date}/{device}/{path}"

    public let template: String

    public enum TemplateError: Error, CustomStringConvertible, Equatable {
        case unknownPlaceholder(String)
        case unbalanced
        case missingPath
        public var description: String {
            switch self {
            case .unknownPlaceholder(let p):
                return "--key-template: unknown placeholder {\(p)}; use {prefix}, {date}, {device}, {path} or {name}"
            case .unbalanced: return "--key-template: a '{' or '}' has no partner"
            case .missingPath: return "--key-template must contain {path} or {name}, or every file would get the same key"
            }
        }
    }

    public init(_ template: String) throws {
        var rest = Substring(template)
        var hasPath = false
        while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            guard rest[open] == "{", let close = rest[open...].firstIndex(of: "}") else { throw TemplateError.unbalanced }
            let name = String(rest[rest.index(after: open)..<close])
            guard !name.contains("{") else { throw TemplateError.unbalanced }
            guard Self.placeholders.contains(name) else { throw TemplateError.unknownPlaceholder(name) }
            if name == "path" || name == "name" { hasPath = true }
            rest = rest[rest.index(after: close)...]
        }
        guard hasPath else { throw TemplateError.missingPath }
        self.template = template
    }

    /// The key for a file; `{path}`, `{name}` and `{device}` are in name form (`NameCodec`, README
    /// "File names"), so a name that is not UTF-8 or holds a control character reaches S3
    /// losslessly, as `%XX`, and a key never holds a control character. Empty segments (an empty prefix, say) collapse so keys never hold "//"
    /// or start with "/". One pass, so a value that itself contains "{date}" is not expanded again.
    public func key(prefix: String, date: String, file: LocalFile) -> String {
        let name = file.relativePath.split(separator: "/").last.map(String.init) ?? file.relativePath
        let values = ["prefix": prefix, "date": date, "device": file.device, "path": file.relativePath, "name": name]
        var filled = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            filled += rest[..<open]
            filled += values[String(rest[rest.index(after: open)..<close])] ?? ""
            rest = rest[rest.index(after: close)...]
        }
        filled += rest
        return filled.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
    }
}
