/// Just enough XML for S3's small, flat responses: the text of `<Tag>` elements, optionally
/// inside each `<Block>`. S3 never nests a tag inside one of the same name.
enum S3XML {
    static func value(_ tag: String, in xml: Substring) -> String? {
        guard let open = xml.range(of: "<\(tag)>") else { return nil }
        guard let close = xml.range(of: "</\(tag)>", range: open.upperBound..<xml.endIndex) else { return nil }
        return unescape(xml[open.upperBound..<close.lowerBound])
    }

    static func value(_ tag: String, in xml: String) -> String? { value(tag, in: xml[...]) }

    static func blocks(_ tag: String, in xml: String) -> [Substring] {
        var out: [Substring] = []
        var rest = xml[...]
        while let open = rest.range(of: "<\(tag)>"),
              let close = rest.range(of: "</\(tag)>", range: open.upperBound..<rest.endIndex) {
            out.append(rest[open.upperBound..<close.lowerBound])
            rest = rest[close.upperBound...]
        }
        return out
    }

    static func unescape(_ s: Substring) -> String {
        guard s.contains("&") else { return String(s) }
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "&", let semi = s[i...].firstIndex(of: ";") {
                let entity = s[s.index(after: i)..<semi]
                var replacement: String?
                switch entity {
                case "amp": replacement = "&"
                case "lt": replacement = "<"
                case "gt": replacement = ">"
                case "quot": replacement = "\""
                case "apos": replacement = "'"
                default:
                    if entity.hasPrefix("#x"), let v = UInt32(entity.dropFirst(2), radix: 16), let u = Unicode.Scalar(v) {
                        replacement = String(Character(u))
                    } else if entity.hasPrefix("#"), let v = UInt32(entity.dropFirst()), let u = Unicode.Scalar(v) {
                        replacement = String(Character(u))
                    }
                }
                if let replacement {
                    out += replacement
                    i = s.index(after: semi)
                    continue
                }
            }
            out.append(s[i])
            i = s.index(after: i)
        }
        return out
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }
}
