extension String {
    /// The name as a terminal line can show it: control characters (a newline, CR or ESC in a file
    /// name on a tag, C1 controls), line and paragraph separators and bidirectional overrides
    /// written as escapes, so one file is always one line and a name can never move the cursor,
    /// recolour the terminal or forge another line. Bytes that are not UTF-8 never reach a String:
    /// names carry them as `%XX` (see `NameCodec`), which prints as it is.
    public var printable: String {
        guard unicodeScalars.contains(where: Self.needsEscape) else { return self }
        return unicodeScalars.map { s in
            switch s {
            case "\n": return "\\n"
            case "\r": return "\\r"
            case "\t": return "\\t"
            default: return Self.needsEscape(s) ? "\\u{\(String(s.value, radix: 16))}" : String(s)
            }
        }.joined()
    }

    static func needsEscape(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x00...0x1F, 0x7F...0x9F: return true  // C0, DEL, C1 (ESC, CSI, NEL…)
        case 0x2028, 0x2029: return true  // line and paragraph separators
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true  // bidi controls
        case 0xFFFD: return true  // a replacement character, said as such
        default: return false
        }
    }

    /// Every line of a message printable, line breaks kept: what the console writes.
    var printableLines: String {
        guard unicodeScalars.contains(where: { $0 != "\n" && $0 != "\t" && Self.needsEscape($0) }) else { return self }
        return unicodeScalars.map { s in
            s == "\n" || s == "\t" ? String(s) : s == "\r" ? "\\r" : Self.needsEscape(s) ? "\\u{\(String(s.value, radix: 16))}" : String(s)
        }.joined()
    }
}
