import Foundation

/// The tags' login password: `--password-file`, else `CETI_TAG_PASSWORD`, else the factory
/// password. It is never printed, logged or stored.
public enum TagPassword {
    public static func resolve(file: String?, environment: [String: String]) throws -> String {
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw UsageError("cannot read --password-file \(file): check the path and its permissions")
            }
            let password = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
            guard !password.isEmpty else { throw UsageError("--password-file \(file) is empty: put the password on its first line") }
            return password
        }
        if let p = environment["CETI_TAG_PASSWORD"], !p.isEmpty { return p }
        return PullOptions.factoryPassword
    }

    /// `--identity`: a key file that cannot be read is a usage error before any connection (never
    /// a silent fallback to the password).
    public static func checkIdentity(_ path: String?) throws {
        guard let path else { return }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
            FileManager.default.isReadableFile(atPath: path)
        else {
            throw UsageError("cannot read --identity \(path): give the path of a readable private key file (ed25519)")
        }
    }
}
