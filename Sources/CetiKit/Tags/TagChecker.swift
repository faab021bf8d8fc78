import Foundation

/// Confirms downloads with the tag's own `sha256sum`, over an SSH connection of its own opened at
/// the first file, while the pull goes on with the next file: the tag's hashing (seconds per file
/// on a Pi Zero 2, which has no SHA instructions) overlaps the transfer instead of following it, so
/// verification adds the time of the last file only. What arrives while a check runs is confirmed
/// next, in one command. Its checks run on a serial queue of its own (blocking SSH calls, in
/// order). Without a second connection (refused, or the check is off) each file is confirmed in
/// line over the pull's own. `finish` waits for all and returns the outcomes.
final class TagChecker: @unchecked Sendable {
    typealias Done = @Sendable (PullOutcome, CopyRecord?) -> Void

    private let puller: TagPuller
    private let target: TagTarget
    /// The pull's connection: used for the in-line fallback only, on the pull's thread.
    private let tag: any TagConnection
    /// The checker's own, used from `queue` only (libssh2 sessions are not shared between threads).
    private var connection: (any TagConnection)?
    private var tried = false
    private let queue = DispatchQueue(label: "ceti.tag-check")
    private let waiting = Locked(Waiting())
    private let outcomes = Locked<[PullOutcome]>([])

    private struct Waiting: Sendable {
        var items: [(TagPuller.Download, Done)] = []
        var running = false
    }

    init(for target: TagTarget, tag: any TagConnection, puller: TagPuller) {
        self.puller = puller
        self.target = target
        self.tag = tag
    }

    /// Confirms `download` after the ones before it; `done` gets the outcome and the recorded copy
    /// (nil when the tag disowns the bytes). Called from the pull's thread.
    func confirm(_ download: TagPuller.Download, done: @escaping Done = { _, _ in }) throws {
        if !tried {
            tried = true
            if puller.options.remoteVerify {
                do {
                    connection = try puller.connector.connect(target, expectedName: tag.name)
                } catch {
                    puller.console.verbose("\(tag.name): no second connection for the tag's checksums (\(error)); checking in line")
                }
            }
        }
        guard connection != nil else {
            let (outcome, copy) = try puller.confirm([download], from: tag)[0]
            record(outcome, copy, done)
            return
        }
        let start = waiting.update { w -> Bool in
            w.items.append((download, done))
            defer { w.running = true }
            return !w.running
        }
        if start { queue.async { [self] in work() } }
    }

    /// Waits until every file is confirmed (or not); their outcomes, a changed log forgiven.
    func finish() -> [PullOutcome] {
        queue.sync {}
        return outcomes.value
    }

    private func record(_ outcome: PullOutcome, _ copy: CopyRecord?, _ done: Done) {
        outcomes.update { $0.append(PlannedPull.forgiving(outcome)) }
        done(outcome, copy)
    }

    private func work() {
        guard let connection else { return }
        while true {
            let batch = waiting.update { w -> [(TagPuller.Download, Done)] in
                let b = w.items
                w.items = []
                if b.isEmpty { w.running = false }
                return b
            }
            if batch.isEmpty { return }
            do {
                for ((outcome, copy), item) in zip(try puller.confirm(batch.map(\.0), from: connection), batch) {
                    record(outcome, copy, item.1)
                }
            } catch {
                for (download, done) in batch {
                    var outcome = download.outcome
                    outcome.action = .failed
                    outcome.message = "\(error)"
                    record(outcome, nil, done)
                }
            }
        }
    }
}
