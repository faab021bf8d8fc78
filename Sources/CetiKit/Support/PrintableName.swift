extension String {
    /// The name as a terminal line can show it: control characters (a newline in a file name on a
    /// tag, say) written as escapes, so one file is always one line.
    public var printable: String {
        guard unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return self }
        return unicodeScalars.map { s in
            switch s {
            case "\n": return "\\n"
            case "\r": return "\\r"
            case "\t": return "\\t"
            default: return s.properties.generalCategory == .control ? "\\u{\(String(s.value, radix: 16))}" : String(s)
            }
        }.joined()
    }
}
