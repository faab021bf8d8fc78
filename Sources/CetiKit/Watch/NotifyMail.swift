import Foundation

/// The e-mail a notification is sent as: RFC 5322 headers and a plain-text body, CRLF lines.
/// Every header value is one line whatever a session's name holds (control characters become
/// spaces, non-ASCII is RFC 2047-encoded), so a name can never add a header or a recipient.
enum NotifyMail {
    /// A subject longer than this is cut (the whole text is in the body).
    static let maxSubject = 200
    /// At most this many errors are listed, each cut to `maxLine` characters.
    static let maxErrors = 50
    static let maxLine = 500

    static func message(_ event: WatchEvent, from: String, to: [String], date: Date = Date(), id: UUID = UUID()) -> [UInt8] {
        let domain = from.split(separator: "@").last.map { $0.filter { $0.isASCII && ($0.isLetter || $0.isNumber || ".-".contains($0)) } }
        let body = self.body(event)
        // 7bit only when it is: ASCII in lines within SMTP's 998 bytes (a long path may not be).
        let sevenBit = body.utf8.allSatisfy { $0 < 0x80 } && !body.components(separatedBy: "\r\n").contains { $0.utf8.count > 998 }
        let headers = [
            "From: " + singleLine(from),
            "To: " + to.map(singleLine).joined(separator: ", "),
            "Subject: " + encodedWords(String(singleLine(event.text).prefix(maxSubject))),
            "Date: " + rfc5322Date(date),
            "Message-ID: <\(id.uuidString.lowercased()).ceti@\(domain.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost")>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: " + (sevenBit ? "7bit" : "base64"),
            // RFC 3834: no vacation auto-reply to a machine's message.
            "Auto-Submitted: auto-generated",
        ]
        let text =
            sevenBit
            ? body
            : Data(body.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        return Array((headers.joined(separator: "\r\n") + "\r\n\r\n" + text + "\r\n").utf8)
    }

    /// The body: the event's text, then one line per field; names shown with their control
    /// characters escaped, so one value is always one line.
    static func body(_ event: WatchEvent) -> String {
        var errors = event.errors.prefix(maxErrors).map { "  - " + String($0.printable.prefix(maxLine)) }
        if event.errors.count > maxErrors { errors.append("  ... and \(event.errors.count - maxErrors) more") }
        let lines =
            [
                event.text.printable, "",
                "event:    \(event.event.rawValue)",
                "session:  \(event.session.printable)",
                "root:     \(event.root.printable)",
                "files:    \(event.files)",
                "bytes:    \(ByteSize.format(event.bytes)) (\(event.bytes) bytes)",
                "manifest: \(event.manifest?.printable ?? "none")",
                "errors:   \(event.errors.isEmpty ? "none" : String(event.errors.count))",
            ] + errors + [
                "host:     \(event.host.printable)",
                "time:     \(event.at.printable)",
                "", "-- ceti watch",
            ]
        return lines.joined(separator: "\r\n")
    }

    /// A header value on one line: every control character (CR and LF first) becomes a space.
    static func singleLine(_ value: String) -> String {
        String(String.UnicodeScalarView(value.unicodeScalars.map { String.needsEscape($0) ? " " : $0 }))
            .trimmingCharacters(in: .whitespaces)
    }

    /// ASCII as it is; anything else as RFC 2047 encoded words (UTF-8, base64), each at most 75
    /// characters, folded onto continuation lines. Characters are never split between words.
    static func encodedWords(_ value: String) -> String {
        guard !value.utf8.contains(where: { $0 >= 0x80 }) else {
            var words: [String] = []
            var chunk: [UInt8] = []
            func flush() {
                if !chunk.isEmpty { words.append("=?utf-8?B?" + Data(chunk).base64EncodedString() + "?=") }
                chunk = []
            }
            for c in value {
                let bytes = Array(String(c).utf8)
                // 45 bytes of UTF-8 are 60 of base64: 72 characters with the word's markers.
                if chunk.count + bytes.count > 45 { flush() }
                chunk += bytes
            }
            flush()
            return words.joined(separator: "\r\n ")
        }
        return value
    }

    /// `Tue, 01 Dec 2026 21:40:00 +0000`, in English whatever the locale.
    static func rfc5322Date(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var t = tm()
        gmtime_r(&seconds, &t)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(t.tm_wday)]), \(two(t.tm_mday)) \(months[Int(t.tm_mon)]) \(t.tm_year + 1900) "
            + "\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)) +0000"
    }
}
