import Foundation

/// `--bwlimit`: one rate for the whole run, or an rclone-style timetable of `HH:MM,RATE` entries
/// (local time), each in force from its time until the next one (the last wraps past midnight to
/// the first), e.g. `"06:00,1M 22:00,off"`: 1 MiB/s by day, no cap at night. A rate is bytes per
/// second with k/M/G suffixes (powers of 1024), or `off`.
public struct BandwidthSchedule: Sendable, Equatable {
    public struct Slot: Sendable, Equatable {
        /// Minutes after local midnight.
        public var minute: Int
        /// nil: no cap.
        public var rate: Int64?
    }

    /// Sorted by minute; one slot at minute 0 for a plain rate.
    public let slots: [Slot]

    public enum ParseError: Error, CustomStringConvertible {
        case bad(String, why: String)
        public var description: String {
            guard case .bad(let text, let why) = self else { return "" }
            return "\(text): \(why); give a rate such as 2M, off, or a timetable such as \"06:00,1M 22:00,off\""
        }
    }

    /// nil when the whole text means no cap (`off`, `none`, `0`, `unlimited`).
    public static func parse(_ text: String) throws -> BandwidthSchedule? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ";" }).map(String.init)
        guard !words.isEmpty else { throw ParseError.bad(text, why: "empty") }
        if words.count == 1, !words[0].contains(",") {
            guard let rate = try Self.rate(words[0], in: text) else { return nil }
            return BandwidthSchedule(slots: [Slot(minute: 0, rate: rate)])
        }
        var slots: [Slot] = []
        for word in words {
            let pair = word.split(separator: ",", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { throw ParseError.bad(text, why: "'\(word)' is not HH:MM,RATE") }
            let clock = pair[0].split(separator: ":").map { Int($0) }
            guard clock.count == 2, let h = clock[0], let m = clock[1], (0..<24).contains(h), (0..<60).contains(m) else {
                throw ParseError.bad(text, why: "'\(pair[0])' is not a time of day HH:MM")
            }
            guard !slots.contains(where: { $0.minute == h * 60 + m }) else { throw ParseError.bad(text, why: "\(pair[0]) is given twice") }
            slots.append(Slot(minute: h * 60 + m, rate: try Self.rate(pair[1], in: text)))
        }
        return BandwidthSchedule(slots: slots.sorted { $0.minute < $1.minute })
    }

    private static func rate(_ word: String, in text: String) throws -> Int64? {
        if ["off", "none", "0", "unlimited"].contains(word.lowercased()) { return nil }
        guard let rate = ByteSize.parse(word), rate >= 1024 else {
            throw ParseError.bad(text, why: "'\(word)' is not a rate of at least 1k")
        }
        return rate
    }

    init(slots: [Slot]) { self.slots = slots }

    /// The cap in force at `date` (local time); nil: none.
    public func rate(at date: Date, calendar: Calendar = .current) -> Int64? {
        let parts = calendar.dateComponents([.hour, .minute], from: date)
        let minute = (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
        return (slots.last { $0.minute <= minute } ?? slots.last)?.rate
    }

    /// For -vv and messages.
    public var description: String {
        func r(_ rate: Int64?) -> String { rate.map { "\(ByteSize.format($0))/s" } ?? "off" }
        if slots.count == 1, slots[0].minute == 0 { return r(slots[0].rate) }
        return slots.map { String(format: "%02d:%02d ", $0.minute / 60, $0.minute % 60) + r($0.rate) }.joined(separator: ", ")
    }
}
