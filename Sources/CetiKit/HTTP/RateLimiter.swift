import Foundation

/// A token bucket shared by every transfer, so `--bwlimit` caps the aggregate rate. It is only
/// called from libcurl's own threads, where blocking is allowed.
public final class RateLimiter: @unchecked Sendable {
    private let bytesPerSecond: Double
    private let burst: Double
    private var tokens: Double
    private var last: UInt64
    private let lock = NSLock()

    public init(bytesPerSecond: Int64) {
        self.bytesPerSecond = Double(max(1, bytesPerSecond))
        // A quarter of a second of burst keeps the rate smooth without starving small requests.
        self.burst = max(16 * 1024, self.bytesPerSecond / 4)
        self.tokens = burst
        self.last = DispatchTime.now().uptimeNanoseconds
    }

    /// Blocks until `count` bytes may be sent.
    public func acquire(_ count: Int) {
        var need = Double(count)
        while need > 0 {
            let wait: Double
            lock.lock()
            let now = DispatchTime.now().uptimeNanoseconds
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
