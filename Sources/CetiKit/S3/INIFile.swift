import Foundation

/// The INI dialect of ~/.aws/credentials and ~/.aws/config, as botocore's configparser reads it:
/// `[section]` headers (name trimmed), `key = value` or `key: value` (split at the first delimiter,
/// whitespace around it ignored, keys lowercased), full-line comments starting with '#' or ';'.
/// A line indented deeper than the setting above it continues that value (how nested settings such
/// as `s3 =` are written).
/// A section repeated later is merged into the first, later keys winning.
struct INIFile: Sendable, Equatable {
    struct SyntaxError: Error, Equatable {
        var line: Int
        var reason: String
    }

    private(set) var sections: [String: [String: String]] = [:]

    subscript(section: String) -> [String: String]? { sections[section] }

    init(parsing text: String) throws(SyntaxError) {
        var section: String?
        var lastKey: (name: String, indent: Int)?
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        for (index, rawLine) in lines.enumerated() {
            var line = Substring(rawLine)
            if index == 0, line.first == "\u{FEFF}" { line = line.dropFirst() }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }

            let indent = line.prefix(while: { $0 == " " || $0 == "\t" }).count
            if let section, let lastKey, indent > lastKey.indent {
                let previous = sections[section]![lastKey.name]!
                sections[section]![lastKey.name] = previous.isEmpty ? trimmed : previous + "\n" + trimmed
                continue
            }
            if trimmed.hasPrefix("[") {
                guard trimmed.hasSuffix("]"), trimmed.count > 2 else {
                    throw SyntaxError(line: index + 1, reason: "section header without a closing ']'")
                }
                let name = trimmed.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                section = name
                lastKey = nil
                if sections[name] == nil { sections[name] = [:] }
                continue
            }
            guard let delimiter = trimmed.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw SyntaxError(line: index + 1, reason: "expected 'key = value' or a [section] header")
            }
            guard let section else {
                throw SyntaxError(line: index + 1, reason: "setting before the first [section] header")
            }
            let key = trimmed[..<delimiter].trimmingCharacters(in: .whitespaces).lowercased()
            guard !key.isEmpty else { throw SyntaxError(line: index + 1, reason: "setting without a name") }
            let value = trimmed[trimmed.index(after: delimiter)...].trimmingCharacters(in: .whitespaces)
            sections[section]![key] = value
            lastKey = (key, indent)
        }
    }
}
