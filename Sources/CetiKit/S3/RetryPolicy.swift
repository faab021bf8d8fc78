import Foundation

/// Jittered exponential backoff ("equal jitter"): attempt n waits a random time between half and all of
/// min(maxDelay, baseDelay * 2^n), within a fixed number of attempts.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double

    public init(maxAttempts: Int = 8, baseDelay: Double = 0.5, maxDelay: Double = 30) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    public func delay(afterAttempt attempt: Int) -> Double {
        let cap = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: cap / 2...cap)
    }
}
