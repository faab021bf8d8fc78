/// The tag's own `sha256sum` of files in one directory: a second opinion on every copy that
/// does not depend on our SFTP path. Names (in name form, see `NameCodec`) reach the tag as their
/// own bytes: written as octal escapes of a `printf` format, NUL-separated, through `xargs -0`, so
/// no name is ever parsed by the shell, whatever bytes it holds (a newline, a quote, a leading
/// dash, bytes that are not UTF-8), and a 255-byte name fits.
enum RemoteChecksums {
    /// Keeps each command well under Linux's 128 kB limit on one argument (`sh -c COMMAND`).
    static let commandBudget = 64 * 1024

    static func sha256(of names: [String], in directory: String, on tag: any TagConnection) throws -> [String: String] {
        var out: [String: String] = [:]
        var batch: [String] = []
        var length = 0
        for name in names {
            let escaped = escape(NameCodec.decode(name)) + "\\000"
            if !batch.isEmpty && length + escaped.utf8.count > commandBudget {
                out.merge(try run(batch, in: directory, on: tag)) { $1 }
                batch = []
                length = 0
            }
            batch.append(escaped)
            length += escaped.utf8.count
        }
        if !batch.isEmpty { out.merge(try run(batch, in: directory, on: tag)) { $1 } }
        return out
    }

    private static func run(_ escaped: [String], in directory: String, on tag: any TagConnection) throws -> [String: String] {
        let dir = escape(NameCodec.decodePath(directory))
        // `cd` to the folder given as bytes too (it comes from --remote-dir).
        let command = "cd \"$(printf '\(dir)/')\" && printf '" + escaped.joined() + "' | xargs -0 sha256sum --"
        let result = try tag.exec(command)
        // A missing file makes sha256sum exit 1 but still print the others: use what it printed.
        var out: [String: String] = [:]
        for line in result.stdout.split(separator: 0x0A, omittingEmptySubsequences: true) {
            if let (hash, name) = parse(line) { out[NameCodec.encode(name)] = hash }
        }
        if out.isEmpty && result.status != 0 {
            throw SSHError.remoteCommand(host: tag.label, command: "sha256sum", status: result.status, stderr: result.stderr)
        }
        return out
    }

    /// Bytes as a `printf` format inside single quotes: letters, digits and a few safe marks as
    /// they are, every other byte as a three-digit octal escape.
    static func escape(_ bytes: [UInt8]) -> String {
        var s = ""
        for b in bytes {
            switch b {
            // ("-" is escaped too: a format starting with it would read as an option of printf.)
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2E, 0x5F, 0x2F, 0x2C, 0x2B, 0x3A, 0x3D, 0x40:
                s.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let o = String(b, radix: 8)
                s += "\\" + String(repeating: "0", count: 3 - o.count) + o
            }
        }
        return s
    }

    /// `HASH  NAME` (or `HASH *NAME`); a line starting with a backslash has `\\`, `\n` (and, in
    /// newer coreutils, `\r`) escaped in its name (GNU coreutils). Returns the name's bytes.
    static func parse<C: Collection>(_ line: C) -> (String, [UInt8])? where C.Element == UInt8 {
        var rest = Array(line)[...]
        let escaped = rest.first == 0x5C
        if escaped { rest = rest.dropFirst() }
        let hash = rest.prefix(64)
        guard hash.count == 64, hash.allSatisfy({ NameCodec.hex($0) != nil }) else { return nil }
        rest = rest.dropFirst(64)
        guard rest.count >= 2, rest.first == 0x20 else { return nil }
        rest = rest.dropFirst(2)
        let hex = String(decoding: hash, as: UTF8.self).lowercased()
        guard escaped else { return (hex, Array(rest)) }
        var name: [UInt8] = []
        var i = rest.startIndex
        while i < rest.endIndex {
            let c = rest[i]
            i += 1
            if c == 0x5C, i < rest.endIndex {
                let next = rest[i]
                i += 1
                name.append(next == 0x6E ? 0x0A : next == 0x72 ? 0x0D : next)
            } else {
                name.append(c)
            }
        }
        return (hex, name)
    }
}
