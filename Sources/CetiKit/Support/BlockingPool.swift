import Foundation

/// Threads of our own for blocking work (hashing and reading large files), so it never occupies
/// Swift's cooperative pool. Callers await the result through a continuation.
public final class BlockingPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [() -> Void] = []

    public init(threads: Int, name: String) {
        for i in 0..<max(1, threads) {
            let t = Thread { [condition] in
                while true {
                    condition.lock()
                    while self.queue.isEmpty { condition.wait() }
                    let work = self.queue.removeFirst()
                    condition.unlock()
                    work()
                }
            }
            t.name = "\(name)-\(i)"
            t.start()
        }
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            condition.lock()
            queue.append { c.resume(with: Result { try body() }) }
            condition.signal()
            condition.unlock()
        }
    }
}
