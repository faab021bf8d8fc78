import Foundation

/// Jittered exponential backoff ("equal jitter"): attempt n waits a random time between half and all of
/// min(maxDelay, baseDelay * 2^n), within a fixed number of attempts.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double
    /// Attempts when S3 does not answer at all (no connection, a reset, a timeout). ingest keeps
    /// this short: its uplink watch waits for a link that is down, and the upload resumes.
    public var networkAttempts: Int

    public init(maxAttempts: Int = 8, baseDelay: Double = 0.5, maxDelay: Double = 30, networkAttempts: Int? = nil) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.networkAttempts = networkAttempts ?? maxAttempts
    }

    public func delay(afterAttempt attempt: Int) -> Double {
        let cap = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: cap / 2...cap)
    }
}
