/// Just enough XML for S3's small, flat responses: the text of `<Tag>` elements, optionally
/// inside each `<Block>`. S3 never nests a tag inside one of the same name.
enum S3XML {
    static func value(_ tag: String, in xml: Substring) -> String? {
        guard let open = find("<\(tag)>", in: xml, from: xml.startIndex),
            let close = find("</\(tag)>", in: xml, from: open.upperBound)
        else { return nil }
        return unescape(xml[open.upperBound..<close.lowerBound])
    }

    static func value(_ tag: String, in xml: String) -> String? { value(tag, in: xml[...]) }

    static func blocks(_ tag: String, in xml: String) -> [Substring] {
        var out: [Substring] = []
        let all = xml[...]
        var from = all.startIndex
        while let open = find("<\(tag)>", in: all, from: from), let close = find("</\(tag)>", in: all, from: open.upperBound) {
            out.append(all[open.upperBound..<close.lowerBound])
            from = close.upperBound
        }
        return out
    }

    /// The first `needle` in `text` at or after `from`, by UTF-8 bytes: Foundation's range(of:)
    /// copies the rest of a Substring on every call, quadratic over a 1,000-key listing.
    static func find(_ needle: String, in text: Substring, from: String.Index) -> Range<String.Index>? {
        let n = Array(needle.utf8)
        guard let first = n.first else { return nil }
        let utf8 = text.utf8
        var i = from
        while let hit = utf8[i...].firstIndex(of: first) {
            var j = hit
            var k = 0
            while k < n.count, j < utf8.endIndex, utf8[j] == n[k] {
                j = utf8.index(after: j)
                k += 1
            }
            if k == n.count { return hit..<j }
            i = utf8.index(after: hit)
        }
        return nil
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

    /// The five XML (and HTML) specials as entities: for element text and quoted attributes.
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
