import Foundation

/// `--max-staging`: bytes pulled and not yet uploaded. A tag's thread waits before a download
/// while the budget is spent; one file always goes through, however large, so nothing deadlocks.
final class StagingBudget: @unchecked Sendable {
    private let condition = NSCondition()
    private let limit: Int64?
    private var pending: Int64 = 0

    init(limit: Int64?) { self.limit = limit }

    /// Blocks (on a thread of our own, never the cooperative pool) until there is room.
    func reserve(_ bytes: Int64) {
        condition.lock()
        defer { condition.unlock() }
        if let limit {
            while pending > 0 && pending + bytes > limit { condition.wait() }
        }
        pending += bytes
    }

    func release(_ bytes: Int64) {
        condition.lock()
        pending -= bytes
        condition.broadcast()
        condition.unlock()
    }
}
