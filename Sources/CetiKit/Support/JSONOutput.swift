import Foundation

/// The one JSON document a `--json` run prints: snake_case keys, sorted, stable for scripts.
public enum JSONOutput {
    public static func encode(_ value: some Encodable) throws -> String {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try e.encode(value), as: UTF8.self)
    }
}
