import Foundation

/// Tells people what `ceti watch` did: each event to the webhook (a JSON POST) and by e-mail
/// (libcurl's SMTP). A notification never fails an upload: `post` never throws; a channel that
/// fails is logged in one line (the channel and the reason, never the webhook URL or the SMTP
/// password) and the event waits for `retryPending`, which the watcher calls at each scan.
///
/// Retries: 1 min after the failure, then doubling to at most 1 h between attempts; after 24 h
/// the event is dropped with one last line. A channel's retries go oldest first and stop at its
/// first failure in a round (the others would fail alike). At most 1000 deliveries wait; beyond
/// that the oldest is dropped, said in one line. They wait in memory only: a restart loses them,
/// which is acceptable, since the ledger and the status page keep what happened.
public final class Notifier: Sendable {
    /// What became of one event on one channel.
    public struct Delivery: Sendable, Encodable, Equatable {
        /// "webhook" or "e-mail to a@b via smtps://host:465".
        public var channel: String
        public var delivered: Bool
        /// Why not, when not delivered.
        public var reason: String?
    }

    /// `ceti watch test-notify`'s result: one line per channel; exit 1 unless each delivered.
    public struct Report: RunSummary, Sendable {
        public var channels: [Delivery]

        public var line: String {
            channels.map { "\($0.channel): " + ($0.delivered ? "delivered" : "failed: \($0.reason ?? "unknown")") }
                .joined(separator: "\n")
        }
        public var exitCode: Int32 { channels.allSatisfy(\.delivered) ? 0 : 1 }
    }

    /// When a failed delivery is tried again (seconds).
    struct Backoff: Sendable {
        var first: Double = 60
        var max: Double = 3600
        var giveUpAfter: Double = 86_400

        func delay(after attempts: Int) -> Double { min(max, first * pow(2, Double(Swift.max(0, attempts - 1)))) }
    }

    /// One event waiting for one channel.
    private struct Pending: Sendable {
        var event: WatchEvent
        var channel: Int
        var attempts: Int
        var firstFailure: Date
        var next: Date
        var reason: String
    }

    static let maxPending = 1000

    public let settings: NotifySettings
    private let console: Console
    let channels: [NotifyChannel]
    let backoff: Backoff
    /// libcurl blocks: deliveries run on these threads, one per channel.
    private let pool: BlockingPool
    private let queue = Locked<[Pending]>([])

    public convenience init(settings: NotifySettings, console: Console) {
        self.init(settings: settings, console: console, backoff: Backoff())
    }

    init(settings: NotifySettings, console: Console, backoff: Backoff) {
        self.settings = settings
        self.console = console
        self.backoff = backoff
        channels = NotifyChannel.all(settings)
        pool = BlockingPool(threads: max(1, channels.count), name: "ceti-notify")
    }

    deinit { pool.shutdown() }

    /// The channels' names, in the order `deliver` reports them; empty when none is configured.
    public var channelNames: [String] { channels.map(\.name) }

    /// Deliveries waiting for a retry.
    public var pending: Int { queue.value.count }

    /// Sends `event` to every channel if its kind is in `settings.on` (`test` always); a channel
    /// that fails is logged and the event kept for `retryPending`.
    public func post(_ event: WatchEvent) async {
        guard event.event == .test || settings.on.contains(event.event) else { return }
        let now = Date()
        for (i, d) in await deliver(event).enumerated() where !d.delivered {
            let reason = d.reason ?? "unknown"
            let retry = Pending(
                event: event, channel: i, attempts: 1, firstFailure: now, next: now + backoff.delay(after: 1), reason: reason)
            console.error(
                "\(Self.describe(event, to: d.channel)) failed: \(reason); trying again in \(Self.duration(backoff.delay(after: 1)))")
            enqueue(retry)
        }
    }

    /// Sends `event` once to every channel, whatever its kind, and says how each went: no log line,
    /// no retry (`ceti watch test-notify`).
    public func deliver(_ event: WatchEvent) async -> [Delivery] {
        let reasons = await withTaskGroup(of: (Int, String?).self) { group in
            for i in channels.indices { group.addTask { (i, await self.send(event, to: i)) } }
            var reasons = [String?](repeating: nil, count: channels.count)
            for await (i, reason) in group { reasons[i] = reason }
            return reasons
        }
        return zip(channels, reasons).map { Delivery(channel: $0.name, delivered: $1 == nil, reason: $1) }
    }

    /// A `test` event to every channel.
    public func test() async -> Report { Report(channels: await deliver(Self.testEvent())) }

    /// Tries again each delivery whose time has come. Never throws; call it at each scan.
    public func retryPending() async {
        let now = Date()
        let due = queue.update { q in
            let due = q.filter { $0.next <= now }
            q.removeAll { $0.next <= now }
            return due
        }
        guard !due.isEmpty else { return }
        await withTaskGroup(of: Void.self) { group in
            for (_, entries) in Dictionary(grouping: due, by: \.channel) { group.addTask { await self.retry(entries) } }
        }
    }

    /// `entries` (one channel's, oldest first) until the first failure; the rest wait with it.
    private func retry(_ entries: [Pending]) async {
        var failed: Pending?
        for var p in entries {
            if let failed {
                p.next = failed.next
                p.reason = failed.reason
                reschedule(p)
                continue
            }
            let name = channels[p.channel].name
            if let reason = await send(p.event, to: p.channel) {
                p.attempts += 1
                p.reason = reason
                p.next = Date() + backoff.delay(after: p.attempts)
                console.verbose("\(Self.describe(p.event, to: name)) failed again (attempt \(p.attempts)): \(reason)")
                failed = p
                reschedule(p)
            } else {
                console.info("\(Self.describe(p.event, to: name)) delivered on attempt \(p.attempts + 1)")
            }
        }
    }

    /// Back in the queue, unless it has been failing for longer than `giveUpAfter`.
    private func reschedule(_ p: Pending) {
        let age = Date().timeIntervalSince(p.firstFailure)
        guard age < backoff.giveUpAfter else {
            console.error(
                "gave up on \(Self.describe(p.event, to: channels[p.channel].name)) after \(p.attempts) attempt(s) over "
                    + "\(Self.duration(age)); last: \(p.reason)")
            return
        }
        enqueue(p)
    }

    private func enqueue(_ p: Pending) {
        let dropped = queue.update { q in
            q.append(p)
            return q.count > Self.maxPending ? q.removeFirst() : nil
        }
        if let d = dropped {
            console.error(
                "more than \(Self.maxPending) notifications wait for a retry: dropped the oldest, "
                    + "\(Self.describe(d.event, to: channels[d.channel].name)) (\(d.reason))")
        }
    }

    /// One attempt on one channel, on the pool: nil when delivered, else why not.
    private func send(_ event: WatchEvent, to channel: Int) async -> String? {
        let target = channels[channel]
        do {
            try await pool.run { try target.send(event) }
            console.debug("\(Self.describe(event, to: target.name)) delivered")
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// "notification 'complete' for session wt-1/2026-12-01 to webhook".
    static func describe(_ event: WatchEvent, to channel: String) -> String {
        "notification '\(event.event.rawValue)'" + (event.event == .test ? "" : " for session \(event.session)") + " to \(channel)"
    }

    static func duration(_ seconds: Double) -> String {
        seconds < 90
            ? "\(Int(seconds.rounded())) s"
            : seconds < 5400 ? "\(Int((seconds / 60).rounded())) min" : "\(Int((seconds / 3600).rounded())) h"
    }

    /// What `test-notify` sends.
    public static func testEvent(at date: Date = Date()) -> WatchEvent {
        WatchEvent(
            event: .test, session: "test", root: "", files: 0, bytes: 0, manifest: nil, errors: [],
            text: "ceti watch on \(hostName): test notification", host: hostName, at: Timestamp.iso8601(date))
    }

    /// This machine's name, for `WatchEvent.host`.
    public static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
}
