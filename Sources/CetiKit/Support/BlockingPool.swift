import Foundation

/// Threads of our own for blocking work (SSH sessions, encoding, hashing, copying), so it never
/// occupies Swift's cooperative pool. Callers await the result through a continuation (as
/// swift-nio's NIOThreadPool). `shutdown()` lets queued work finish, then ends the threads and
/// waits for them; work submitted after it is refused.
public final class BlockingPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [() -> Void] = []
    private var closed = false
    private let stopped = DispatchGroup()

    public struct ShutDown: Error, CustomStringConvertible {
        public var description: String { "internal: work was given to a thread pool that was shut down" }
    }

    public init(threads: Int, name: String) {
        for i in 0..<max(1, threads) {
            stopped.enter()
            let t = Thread { [self] in
                defer { stopped.leave() }
                while let work = next() { work() }
            }
            t.name = "\(name)-\(i)"
            t.start()
        }
    }

    /// The next piece of work, waiting for one; nil once shut down and drained.
    private func next() -> (() -> Void)? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !closed { condition.wait() }
        return queue.isEmpty ? nil : queue.removeFirst()
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            condition.lock()
            defer { condition.unlock() }
            guard !closed else { return c.resume(throwing: ShutDown()) }
            queue.append { c.resume(with: Result { try body() }) }
            condition.signal()
        }
    }

    /// Finishes what is queued, then ends the threads (waiting for them). Call it from outside
    /// the pool; calling it twice is harmless.
    public func shutdown() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
        stopped.wait()
    }
}
