/// The tag's own `sha256sum` of files in one directory: a second opinion on every copy that
/// does not depend on our SFTP path. Every name is shell-quoted.
enum RemoteChecksums {
    static func sha256(of names: [String], in directory: String, session: SSHSession) throws -> [String: String] {
        guard !names.isEmpty else { return [:] }
        let command = "cd \(SSHSession.quote(directory)) && sha256sum -- " + names.map(SSHSession.quote).joined(separator: " ")
        let result = try session.exec(command)
        // A missing file makes sha256sum exit 1 but still print the others: use what it printed.
        let text = String(decoding: result.stdout, as: UTF8.self)
        var out: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if let (hash, name) = parse(Substring(line)) { out[name] = hash }
        }
        if out.isEmpty && result.status != 0 {
            throw SSHError.remoteCommand(host: session.host, command: "sha256sum", status: result.status, stderr: result.stderr)
        }
        return out
    }

    /// `HASH  NAME` (or `HASH *NAME`); a line starting with a backslash has `\\` and `\n`
    /// escaped in its name (GNU coreutils).
    static func parse(_ line: Substring) -> (String, String)? {
        var rest = line
        let escaped = rest.first == "\\"
        if escaped { rest = rest.dropFirst() }
        let hash = rest.prefix(64)
        guard hash.count == 64, hash.allSatisfy(\.isHexDigit) else { return nil }
        rest = rest.dropFirst(64)
        guard rest.count >= 2, rest.first == " " else { return nil }
        rest = rest.dropFirst(2)
        guard escaped else { return (String(hash).lowercased(), String(rest)) }
        var name = ""
        var i = rest.startIndex
        while i < rest.endIndex {
            let c = rest[i]
            i = rest.index(after: i)
            if c == "\\", i < rest.endIndex {
                let next = rest[i]
                i = rest.index(after: i)
                name.append(next == "n" ? "\n" : next == "r" ? "\r" : next)
            } else {
                name.append(c)
            }
        }
        return (String(hash).lowercased(), name)
    }
}
