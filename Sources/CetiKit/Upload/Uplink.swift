import Foundation

/// Whether S3 answers, as one run sees it. On a boat the uplink is down for minutes to hours:
/// nothing local waits for it. Uploads wait here while S3 does not answer; a monitor asks again
/// (`checkBucket`, one attempt) with backoff; once the pulls are over the run waits at most its
/// patience, then gives up and leaves the uploads queued in the ledger for the next run. A refusal
/// of the credentials or a missing bucket is fatal, whenever it comes.
final class Uplink: Sendable {
    enum State: Sendable, Equatable {
        case online
        case offline(since: Date, problem: String)
        case refused
        /// Offline for longer than the run's patience after its local work was done.
        case gaveUp
    }

    private let probe: any ObjectStore
    private let bucket: String
    private let clock: any WallClock
    private let console: Console
    /// Seconds between the first asks, doubling up to `maxDelay`.
    private let firstDelay: Double
    private let maxDelay: Double
    private let shared = Locked(Shared())

    private struct Shared: Sendable {
        var state: State = .online
        var waiters: [CheckedContinuation<Bool, Never>] = []
        var patienceDeadline: Date?
        var fatal: S3Error?
        var monitoring = false
        var stopped = false
        /// When S3 is asked next, while it is unreachable.
        var nextAsk: Date?
        /// Files (and their bytes) waiting for S3 right now.
        var waitingFiles = 0
        var waitingBytes: Int64 = 0
    }

    init(probe: any ObjectStore, bucket: String, clock: any WallClock, console: Console, firstDelay: Double = 5, maxDelay: Double = 60) {
        self.probe = probe
        self.bucket = bucket
        self.clock = clock
        self.console = console
        self.firstDelay = firstDelay
        self.maxDelay = maxDelay
    }

    var state: State { shared.value.state }
    var isOnline: Bool { state == .online }
    /// The refusal that ended the run, if S3 refused the credentials or the bucket.
    var fatal: S3Error? { shared.value.fatal }

    /// Asks S3 once. Online: true. Unreachable: false, and the monitor starts asking again.
    /// Refused: throws (the run ends with it).
    @discardableResult
    func check() async throws -> Bool {
        do {
            try await probe.checkBucket(bucket)
            setOnline()
            return true
        } catch let e as S3Error where e.isFatal {
            refuse(e)
            throw e
        } catch let e as S3Error where e.isUnreachable || e.isTransient {
            lost(e.linkProblem)
            return false
        }
    }

    /// An upload found S3 unreachable (after its retries): wait for it again.
    func lost(_ problem: String) {
        let start = shared.update { s -> Bool in
            if case .online = s.state { s.state = .offline(since: clock.now(), problem: problem) }
            guard !s.monitoring, !s.stopped, case .offline = s.state else { return false }
            s.monitoring = true
            return true
        }
        guard start else { return }
        console.info("S3 unreachable (\(problem)); pulling and compressing go on, uploads wait for it")
        Task { await monitor() }
    }

    /// Waits until S3 answers: true; false when the run gave up waiting or S3 refused.
    func waitOnline() async -> Bool {
        await withCheckedContinuation { c in
            let answer: Bool? = shared.update { s in
                switch s.state {
                case .online: return true
                case .refused, .gaveUp: return false
                case .offline:
                    s.waiters.append(c)
                    return nil
                }
            }
            if let answer { c.resume(returning: answer) }
        }
    }

    /// The run's local work is done: wait for S3 at most `seconds` more (from now), then give up.
    func startPatience(_ seconds: Double) {
        let giveUpNow = shared.update { s -> Bool in
            s.patienceDeadline = clock.now().addingTimeInterval(seconds)
            if case .offline = s.state, seconds <= 0 { return true }
            return false
        }
        if giveUpNow { finish(.gaveUp, answer: false) }
    }

    /// Ends the monitor (the run is over).
    func stop() {
        shared.update { $0.stopped = true }
        finish(nil, answer: false)
    }

    private func monitor() async {
        var delay = firstDelay
        while true {
            let (stopped, deadline) = shared.update { ($0.stopped, $0.patienceDeadline) }
            if stopped { break }
            if let deadline, clock.now() >= deadline {
                if case .offline = state {
                    console.info("S3 still unreachable after the run's patience; the uploads stay queued for the next run")
                    finish(.gaveUp, answer: false)
                }
                break
            }
            var wait = delay
            if let deadline { wait = min(wait, max(0, deadline.timeIntervalSince(clock.now()))) }
            let next = clock.now().addingTimeInterval(wait)
            shared.update { $0.nextAsk = next }
            console.verbose("S3 unreachable: asking again in \(Int(wait.rounded())) s")
            try? await clock.sleep(seconds: wait)
            delay = min(maxDelay, delay * 2)
            if (try? await check()) == true {
                console.info("S3 answers again; uploading the queue")
                break
            }
            if fatal != nil { break }
        }
        shared.update { $0.monitoring = false }
        // Lost again while the loop ended: watch again.
        if case .offline(_, let problem) = state, !shared.value.stopped, fatal == nil {
            lost(problem)
        }
    }

    private func setOnline() {
        shared.update { $0.nextAsk = nil }
        finish(.online, answer: true)
    }

    /// A file starts (or stops) waiting for S3: counted for what the run says while it waits.
    func waiting(_ bytes: Int64, _ delta: Int) {
        shared.update {
            $0.waitingFiles += delta
            $0.waitingBytes += Int64(delta) * bytes
        }
    }

    /// What the run waits for, when it waits (the progress line): "S3 unreachable — 14 files
    /// (2.1 GiB) queued, asking again in 40 s"; nil while S3 answers.
    var waitDescription: String? {
        let s = shared.value
        guard case .offline(_, let problem) = s.state else { return nil }
        let next = s.nextAsk.map { max(0, Int($0.timeIntervalSince(clock.now()).rounded())) }
        return "S3 unreachable (\(problem.prefix(60))) — \(s.waitingFiles) file(s) (\(ByteSize.format(s.waitingBytes))) queued"
            + (next.map { ", asking again in \($0) s" } ?? "")
    }

    private func refuse(_ e: S3Error) {
        shared.update { $0.fatal = $0.fatal ?? e }
        finish(.refused, answer: false)
    }

    /// Sets the state (unless nil) and answers every waiter.
    private func finish(_ state: State?, answer: Bool) {
        let waiters = shared.update { s -> [CheckedContinuation<Bool, Never>] in
            if let state { s.state = state }
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in waiters { w.resume(returning: answer) }
    }
}

extension S3Error {
    /// What is wrong with the link, in a few words ("connection refused", "HTTP 503 SlowDown").
    var linkProblem: String {
        switch self {
        case .transient(let f): return f.summary
        case .unreachable(_, _, _, let last): return last
        default: return description
        }
    }

    /// One attempt failed in a way a later one may not (a 5xx, SlowDown, a dropped connection).
    var isTransient: Bool {
        if case .transient = self { return true }
        return false
    }

    /// S3 did not answer at all (no route, refused connection, timeouts): the link, not the request.
    public var isUnreachable: Bool {
        switch self {
        case .unreachable: return true
        case .transient(let f): return f.network != nil
        default: return false
        }
    }
}
