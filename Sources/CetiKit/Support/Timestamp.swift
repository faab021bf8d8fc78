import Foundation

/// UTC timestamps and dates as ceti writes them (ISO 8601, so they sort as text).
public enum Timestamp {
    public static func now() -> String { iso8601(Date()) }

    public static func iso8601(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }

    /// The UTC calendar date, YYYY-MM-DD.
    public static func utcDate(_ date: Date = Date()) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let c = cal.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
    }
}
