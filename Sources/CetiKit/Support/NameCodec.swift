import Foundation

/// File names as ceti carries them: a POSIX name is any bytes but `/` and NUL, a Swift `String`
/// only valid Unicode. Every name (from a tag's listing, from a local folder) is turned into its
/// *name form* once, where it enters, and that String is what the ledger, the object keys, the
/// manifests and the JSON output hold; the bytes come back only at the system call (`fsPath`,
/// SFTP) and are never guessed.
///
/// The name form (lossless, documented in README "File names"):
/// - a name that is valid UTF-8, holds no control character and no `%` followed by two hex digits
///   is written as it is (every name a tag writes: `1700000000000.raw`, `data_gps.csv`, `50%.csv`);
/// - any other name — not valid UTF-8, holding a control character (U+0001–U+001F, U+007F–U+009F:
///   a newline, CR, ESC…), or already looking percent-encoded — is written with each byte that is
///   not part of a valid UTF-8 character, each byte of a control character and every `%` as `%XX`
///   (uppercase hex); all other characters stay as they are.
/// So keys, manifests and messages never hold a raw control character: S3's XML (a listing,
/// DeleteObjects) cannot carry ESC, and a terminal must never see one.
/// Decoding: a form that holds `%` + two hex digits is percent-decoded (each `%XX` is byte XX),
/// any other form is the name itself. It is one-to-one: an encoded form always holds a `%XX`
/// and every `%` in it starts one, while a name written as it is holds none.
/// Example: the bytes `ff fe 20 62 61 64 2e 63 73 76` ("\xff\xfe bad.csv") are `%FF%FE bad.csv`.
public enum NameCodec {
    /// The name form of a name's bytes.
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let b = Array(bytes)
        var plain = true
        var i = 0
        while i < b.count {
            guard let n = utf8Length(b, at: i), !isControl(b, at: i) else { plain = false; break }
            i += n
        }
        if plain && !hasPercentHex(b) { return String(decoding: b, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(b.count + 16)
        i = 0
        while i < b.count {
            if let n = utf8Length(b, at: i) {
                if b[i] == 0x25 || isControl(b, at: i) { b[i..<i + n].forEach { out += percent($0) } } else { out += b[i..<i + n] }
                i += n
            } else {
                out += percent(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A name's bytes from its name form.
    public static func decode<S: StringProtocol>(_ form: S) -> [UInt8] {
        let b = Array(form.utf8)
        guard hasPercentHex(b) else { return b }
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            if b[i] == 0x25, i + 2 < b.count, let h = hex(b[i + 1]), let l = hex(b[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return out
    }

    /// Whether the name form stands for bytes that are not its own UTF-8 (a name that needed encoding).
    public static func isEncoded<S: StringProtocol>(_ form: S) -> Bool { hasPercentHex(Array(form.utf8)) }

    /// A path given as text (an option, a folder the user named) in the form whose components
    /// `fsPath` decodes back to it: each component in name form.
    public static func encodePath(_ path: String) -> String {
        guard path.utf8.contains(0x25) else { return path }
        return path.split(separator: "/", omittingEmptySubsequences: false).map { encode(Array($0.utf8)) }.joined(separator: "/")
    }

    /// The bytes of a path whose components are in name form.
    public static func decodePath<S: StringProtocol>(_ path: S) -> [UInt8] {
        guard path.utf8.contains(0x25) else { return Array(path.utf8) }
        var out: [UInt8] = []
        for (n, component) in path.split(separator: "/", omittingEmptySubsequences: false).enumerated() {
            if n > 0 { out.append(0x2F) }
            out += decode(component)
        }
        return out
    }

    /// The short, fixed-length name a pull writes a tag file under until it is verified:
    /// `.ceti-part-` and 20 hex of the SHA-256 of the name's bytes. Any name fits (a 255-byte name
    /// has no room for a suffix), the same file always resumes the same partial, and the prefix is
    /// ceti's own: `s3upload` skips it, while a tag's own dot-files and `*.part` files are uploaded.
    public static func partialName(for form: String) -> String {
        partialPrefix + String(Digest.sha256(decode(form)).hex.prefix(20))
    }

    public static let partialPrefix = ".ceti-part-"

    // MARK: helpers

    /// The length of the valid UTF-8 character starting at `i`, or nil when the byte there starts none.
    static func utf8Length(_ b: [UInt8], at i: Int) -> Int? {
        let c = b[i]
        func cont(_ k: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) -> Bool { i + k < b.count && range.contains(b[i + k]) }
        switch c {
        case 0x00...0x7F: return 1
        case 0xC2...0xDF: return cont(1) ? 2 : nil
        case 0xE0: return cont(1, 0xA0...0xBF) && cont(2) ? 3 : nil
        case 0xE1...0xEC, 0xEE, 0xEF: return cont(1) && cont(2) ? 3 : nil
        case 0xED: return cont(1, 0x80...0x9F) && cont(2) ? 3 : nil
        case 0xF0: return cont(1, 0x90...0xBF) && cont(2) && cont(3) ? 4 : nil
        case 0xF1...0xF3: return cont(1) && cont(2) && cont(3) ? 4 : nil
        case 0xF4: return cont(1, 0x80...0x8F) && cont(2) && cont(3) ? 4 : nil
        default: return nil
        }
    }

    /// A C0 control, DEL, or a C1 control (U+0080–U+009F, the two bytes C2 80…C2 9F).
    static func isControl(_ b: [UInt8], at i: Int) -> Bool {
        b[i] < 0x20 || b[i] == 0x7F || (b[i] == 0xC2 && i + 1 < b.count && (0x80...0x9F).contains(b[i + 1]))
    }

    static func hasPercentHex(_ b: [UInt8]) -> Bool {
        var i = 0
        while i + 2 < b.count {
            if b[i] == 0x25, hex(b[i + 1]) != nil, hex(b[i + 2]) != nil { return true }
            i += 1
        }
        return false
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    static func percent(_ byte: UInt8) -> [UInt8] {
        let digits = Array("0123456789ABCDEF".utf8)
        return [0x25, digits[Int(byte >> 4)], digits[Int(byte & 15)]]
    }
}

/// The bytes to hand a system call for a path whose components are in name form (see
/// `NameCodec`): `open(fsPath(path), …)`. A path without `%` is its own UTF-8.
func fsPath(_ path: String) -> [CChar] {
    NameCodec.decodePath(path).map { CChar(bitPattern: $0) } + [0]
}
