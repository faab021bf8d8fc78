import Foundation

/// Names claimed by one worker at a time within this process (an output path by the input that
/// writes it, a tag's hostname by the target that pulls it), and by whom.
final class ClaimRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var owners: [String: String] = [:]

    /// Claims `name` for `owner`; returns who holds it already, or nil once it is claimed.
    func claim(_ name: String, by owner: String) -> String? {
        lock.withLock {
            if let first = owners[name] { return first }
            owners[name] = owner
            return nil
        }
    }

    func release(_ name: String, by owner: String) {
        lock.withLock { if owners[name] == owner { owners[name] = nil } }
    }
}
