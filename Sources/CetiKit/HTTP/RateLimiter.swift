import Foundation

/// A token bucket shared by every transfer, so `--bwlimit` caps the aggregate rate; its rate
/// follows the timetable (asked again every few seconds). It is only called from libcurl's own
/// threads, where blocking is allowed.
public final class RateLimiter: @unchecked Sendable {
    private let schedule: BandwidthSchedule
    private var bytesPerSecond: Double = 0
    private var burst: Double = 16 * 1024
    private var tokens: Double = 16 * 1024
    private var last: UInt64
    /// When the timetable was last asked (uptime ns).
    private var asked: UInt64 = 0
    private let lock = NSLock()

    public init(schedule: BandwidthSchedule) {
        self.schedule = schedule
        self.last = DispatchTime.now().uptimeNanoseconds
    }

    public convenience init(bytesPerSecond: Int64) {
        self.init(schedule: BandwidthSchedule(slots: [.init(minute: 0, rate: bytesPerSecond)]))
    }

    /// The rate in force (0: no cap), asked of the timetable at most every 5 s.
    private func currentRate(_ now: UInt64) -> Double {
        if asked == 0 || now - asked > 5_000_000_000 {
            asked = now
            let rate = schedule.rate(at: Date()).map { Double(max(1, $0)) } ?? 0
            if rate != bytesPerSecond {
                bytesPerSecond = rate
                // A quarter of a second of burst keeps the rate smooth without starving small requests.
                burst = max(16 * 1024, rate / 4)
                tokens = min(tokens, burst)
            }
        }
        return bytesPerSecond
    }

    /// Blocks until `count` bytes may be sent.
    public func acquire(_ count: Int) {
        var need = Double(count)
        while need > 0 {
            let wait: Double
            lock.lock()
            let now = DispatchTime.now().uptimeNanoseconds
            let bytesPerSecond = currentRate(now)
            guard bytesPerSecond > 0 else {
                last = now
                lock.unlock()
                return
            }
            tokens = min(burst, tokens + Double(now - last) / 1e9 * bytesPerSecond)
            last = now
            let take = min(need, tokens)
            tokens -= take
            need -= take
            wait = need > 0 ? min(need, burst) / bytesPerSecond : 0
            lock.unlock()
            if wait > 0 { Thread.sleep(forTimeInterval: wait) }
        }
    }

    /// The largest chunk one call should ask for, so several transfers share the rate fairly.
    var chunk: Int { Int(max(1024, min(burst, 64 * 1024))) }
}
