import Foundation

/// Runs async work to its end from one of our own blocking threads (a tag's SSH thread), which
/// may wait; never call it from Swift's cooperative pool.
func awaitBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = Locked<Result<T, Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.value = .success(try await body()) } catch { box.value = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.value!.get()
}
