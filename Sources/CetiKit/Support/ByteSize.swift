import Foundation

/// Sizes and rates as operators type and read them.
public enum ByteSize {
    /// "8MiB", "8M", "500k", "2G", "1.5MB", "4096". k/M/G/T and KiB/MiB/GiB/TiB are powers of 1024;
    /// kB/MB/GB/TB are powers of 1000. A trailing "/s" is allowed (rates).
    public static func parse(_ text: String) -> Int64? {
        var s = text.trimmingCharacters(in: .whitespaces)
        if s.hasSuffix("/s") { s.removeLast(2) }
        let digits = s.prefix { $0.isNumber || $0 == "." }
        guard !digits.isEmpty, let number = Double(digits), number >= 0 else { return nil }
        let unit = s.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        let multipliers: [String: Double] = [
            "": 1, "b": 1, "B": 1,
            "k": 1024, "K": 1024, "KiB": 1024, "kiB": 1024, "kB": 1000, "KB": 1000,
            "m": 1_048_576, "M": 1_048_576, "MiB": 1_048_576, "MB": 1e6,
            "g": 1_073_741_824, "G": 1_073_741_824, "GiB": 1_073_741_824, "GB": 1e9,
            "t": 1_099_511_627_776, "T": 1_099_511_627_776, "TiB": 1_099_511_627_776, "TB": 1e12,
        ]
        guard let m = multipliers[unit] else { return nil }
        let value = number * m
        guard value < 9e18 else { return nil }
        return Int64(value.rounded())
    }

    /// "1.5 MiB", "512 B".
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var i = 0
        while abs(value) >= 1024 && i < units.count - 1 {
            value /= 1024
            i += 1
        }
        return i == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[i])
    }
}
