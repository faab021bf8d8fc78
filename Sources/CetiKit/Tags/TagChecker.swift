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
    /// The tag's checksums asked for ahead of a transfer's end, by name.
    private let known = Locked<[String: String]>([:])

    private struct Waiting: Sendable {
        /// Confirmations, and names whose checksum is asked ahead (always before the file's own
        /// confirmation, in the order the pull asks).
        var items: [(TagPuller.Download, Done)] = []
        var ahead: [(name: String, answer: @Sendable (String?) -> Void)] = []
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
        openOnce()
        guard connection != nil else {
            let (outcome, copy) = try puller.confirm([download], from: tag)[0]
            record(outcome, copy, done)
            return
        }
        enqueue { $0.items.append((download, done)) }
    }

    private func enqueue(_ add: (inout Waiting) -> Void) {
        let start = waiting.update { w -> Bool in
            add(&w)
            defer { w.running = true }
            return !w.running
        }
        if start { queue.async { [self] in work() } }
    }

    /// Asks the tag for a file's SHA-256 before its transfer ends, in turn with the confirmations
    /// (a streamed upload's metadata needs it; the file's confirmation then uses it instead of a
    /// second checksum). `answer` gets nil without a connection of the checker's own, or when the
    /// tag cannot say. Called from the pull's thread.
    func ahead(_ name: String, _ answer: @escaping @Sendable (String?) -> Void) {
        openOnce()
        guard connection != nil else { return answer(nil) }
        enqueue { $0.ahead.append((name, answer)) }
    }

    /// The checker's own connection, tried once (at the first file).
    private func openOnce() {
        guard !tried else { return }
        tried = true
        guard puller.options.remoteVerify else { return }
        do {
            connection = try puller.connector.connect(target, expectedName: tag.name)
        } catch {
            puller.console.verbose("\(tag.name): no second connection for the tag's checksums (\(error)); checking in line")
        }
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
            let (ahead, batch) = waiting.update { w in
                defer { (w.items, w.ahead) = ([], []) }
                if w.items.isEmpty && w.ahead.isEmpty { w.running = false }
                return (w.ahead, w.items)
            }
            if ahead.isEmpty && batch.isEmpty { return }
            if !ahead.isEmpty {
                let sums = (try? RemoteChecksums.sha256(of: ahead.map(\.name), in: puller.remoteDirectory, on: connection)) ?? [:]
                known.update { $0.merge(sums) { $1 } }
                for a in ahead { a.answer(sums[a.name]) }
            }
            if batch.isEmpty { continue }
            do {
                for ((outcome, copy), item) in zip(try puller.confirm(batch.map(\.0), from: connection, known: known.value), batch) {
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
