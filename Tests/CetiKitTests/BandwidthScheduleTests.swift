import Foundation
import Testing

@testable import CetiKit

@Suite struct BandwidthScheduleTests {
    var utc: Calendar {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }

    func at(_ h: Int, _ m: Int) -> Date { Date(timeIntervalSince1970: Double(1_796_169_600 + h * 3600 + m * 60)) }

    @Test func aPlainRateOrOff() throws {
        #expect(try BandwidthSchedule.parse("2M")?.rate(at: at(3, 0), calendar: utc) == 2 << 20)
        for off in ["off", "OFF", "none", "0", "unlimited"] { #expect(try BandwidthSchedule.parse(off) == nil) }
    }

    /// rclone's form: each entry from its time to the next; the last one wraps past midnight.
    @Test func aTimetableByLocalTime() throws {
        let s = try #require(try BandwidthSchedule.parse("22:00,off 06:00,1M 12:30,512k"))
        #expect(s.slots.map(\.minute) == [360, 750, 1320])
        #expect(s.rate(at: at(5, 59), calendar: utc) == nil)  // 22:00 → 06:00, off
        #expect(s.rate(at: at(6, 0), calendar: utc) == 1 << 20)
        #expect(s.rate(at: at(12, 29), calendar: utc) == 1 << 20)
        #expect(s.rate(at: at(12, 30), calendar: utc) == 512 << 10)
        #expect(s.rate(at: at(23, 0), calendar: utc) == nil)
        #expect(s.description.hasPrefix("06:00 ") && s.description.hasSuffix(", 22:00 off"))
    }

    @Test func badTimetablesSayWhy() {
        for (text, why) in [
            ("25:00,1M", "time of day"), ("06:00", "rate"), ("06:00,1M 06:00,2M", "twice"), ("06:00,fast", "rate"),
            ("06:00;1M", "HH:MM,RATE"), ("", "empty"),
        ] {
            #expect(throws: BandwidthSchedule.ParseError.self, "\(text)") { try BandwidthSchedule.parse(text) }
            let message =
                (try? BandwidthSchedule.parse(text)).map { _ in "" }
                ?? {
                    do { _ = try BandwidthSchedule.parse(text) } catch { return "\(error)" }
                    return ""
                }()
            #expect(message.contains(why) || why == "rate", "\(text): \(message)")
        }
    }
}
