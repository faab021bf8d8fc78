import Foundation

/// The time of day and waiting, behind one seam: steps stamp records and back off through it, so
/// tests can run a day of retries in no time and give runs fixed ids.
public protocol WallClock: Sendable {
    func now() -> Date
    func sleep(seconds: Double) async throws
}

public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(seconds: Double) async throws {
        try await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
    }
}
