import Foundation

/// Confirms downloads with the tag's own `sha256sum`, over an SSH connection of its own, one file
/// after another, while the pull goes on with the next file: the tag's hashing (seconds per file on
/// a Pi Zero 2, which has no SHA instructions) overlaps the transfer instead of following it, so
/// verification adds the time of the last file only. Its work runs on a serial queue of its own
/// (one per tag, blocking SSH calls in order); `drain` waits for all of it.
final class TagChecker: @unchecked Sendable {
    private let puller: TagPuller
    /// Used from `queue` only (libssh2 sessions are not shared between threads).
    private let connection: any TagConnection
    private let queue = DispatchQueue(label: "ceti.tag-check")

    private init(puller: TagPuller, connection: any TagConnection) {
        self.puller = puller
        self.connection = connection
    }

    /// A checker over a second connection to the tag; nil when the tag's own check is off or a
    /// second connection cannot be had (the pull then confirms each file itself, in line).
    static func open(for target: TagTarget, tag: any TagConnection, puller: TagPuller) -> TagChecker? {
        guard puller.options.remoteVerify else { return nil }
        do {
            let connection = try puller.connector.connect(target, expectedName: tag.name)
            return TagChecker(puller: puller, connection: connection)
        } catch {
            puller.console.verbose("\(tag.name): no second connection for the tag's checksums (\(error)); checking in line")
            return nil
        }
    }

    /// Confirms `download` after the ones before it; `done` gets the outcome and the recorded
    /// copy (nil when the tag disowns the bytes), on the checker's queue. What arrives while a
    /// check runs is confirmed next, all in one command (thousands of small files cost one
    /// `sha256sum` each, not one round trip each).
    func submit(_ download: TagPuller.Download, done: @escaping @Sendable (PullOutcome, CopyRecord?) -> Void) {
        let start = waiting.update { w -> Bool in
            w.items.append((download, done))
            defer { w.running = true }
            return !w.running
        }
        if start { queue.async { [self] in work() } }
    }

    private struct Waiting: Sendable {
        var items: [(TagPuller.Download, @Sendable (PullOutcome, CopyRecord?) -> Void)] = []
        var running = false
    }
    private let waiting = Locked(Waiting())

    private func work() {
        while true {
            let batch = waiting.update { w -> [(TagPuller.Download, @Sendable (PullOutcome, CopyRecord?) -> Void)] in
                let b = w.items
                w.items = []
                if b.isEmpty { w.running = false }
                return b
            }
            if batch.isEmpty { return }
            do {
                for ((outcome, copy), item) in zip(try puller.confirm(batch.map(\.0), from: connection), batch) {
                    item.1(outcome, copy)
                }
            } catch {
                for (download, done) in batch {
                    var outcome = download.outcome
                    outcome.action = .failed
                    outcome.message = "\(error)"
                    done(outcome, nil)
                }
            }
        }
    }

    /// Waits until every submitted file is confirmed (or not).
    func drain() { queue.sync {} }

}
