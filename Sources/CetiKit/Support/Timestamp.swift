import Foundation

/// UTC timestamps and dates as ceti writes them (ISO 8601, so they sort as text). Formatted
/// with gmtime_r: Foundation's formatters cost tens of microseconds each, per file and request.
public enum Timestamp {
    public static func now() -> String { iso8601(Date()) }

    /// 2026-11-22T03:14:27Z
    public static func iso8601(_ date: Date) -> String {
        let t = fields(date)
        return "\(pad(t.tm_year + 1900, 4))-\(pad(t.tm_mon + 1))-\(pad(t.tm_mday))T\(pad(t.tm_hour)):\(pad(t.tm_min)):\(pad(t.tm_sec))Z"
    }

    /// 20261122T031427Z, as SigV4's x-amz-date.
    public static func compact(_ date: Date) -> String {
        let t = fields(date)
        return "\(pad(t.tm_year + 1900, 4))\(pad(t.tm_mon + 1))\(pad(t.tm_mday))T\(pad(t.tm_hour))\(pad(t.tm_min))\(pad(t.tm_sec))Z"
    }

    /// The UTC calendar date, YYYY-MM-DD.
    public static func utcDate(_ date: Date = Date()) -> String {
        let t = fields(date)
        return "\(pad(t.tm_year + 1900, 4))-\(pad(t.tm_mon + 1))-\(pad(t.tm_mday))"
    }

    /// The laptop's local calendar date, YYYY-MM-DD: the operator's day, as backup folders are named.
    public static func localDate(_ date: Date = Date()) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var t = tm()
        localtime_r(&seconds, &t)
        return "\(pad(t.tm_year + 1900, 4))-\(pad(t.tm_mon + 1))-\(pad(t.tm_mday))"
    }

    private static func fields(_ date: Date) -> tm {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var t = tm()
        gmtime_r(&seconds, &t)
        return t
    }

    private static func pad(_ v: Int32, _ width: Int = 2) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
