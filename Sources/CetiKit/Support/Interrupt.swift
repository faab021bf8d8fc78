import Dispatch
import Foundation

/// SIGINT and SIGTERM, process-wide. The executable installs the handlers (`install()`); work
/// checks `Interrupt.isRequested` (or `try Interrupt.check()`) at its check points — before a new
/// file, task or tag starts, and between the chunks of a download — and stops there, leaving the
/// ledger as consistent as after any finished step. After the command returns, the executable
/// prints one line and exits 130 (SIGINT) or 143 (SIGTERM).
///
/// Blocked threads (a stalled SFTP read, a libcurl request, a long FLAC encode) cannot be
/// stopped from outside: `graceSeconds` after the first signal, or at once on a second one, the
/// process runs its last-chance actions (`onForcedExit`, e.g. starting a tag's recorder again),
/// prints the line and exits with the same status. Nothing is lost by that: the ledger writes in
/// transactions, a partial download stays as `.part` and resumes, an unfinished multipart upload
/// resumes from its recorded parts, an unfinished PUT never became an object.
public final class Interrupt: @unchecked Sendable {
    public static let shared = Interrupt()

    /// How long the work in hand may take to end after the first signal.
    public static let graceSeconds = 10.0

    private let lock = NSLock()
    private var first: Int32 = 0
    private var count = 0
    private var exiting = false
    private var actions: [Int: @Sendable () -> Void] = [:]
    private var nextAction = 0
    private nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []

    /// The first signal received, or nil.
    public var signal: Int32? { lock.withLock { first == 0 ? nil : first } }

    public static var isRequested: Bool { shared.signal != nil }

    /// Throws `Interrupted` once a signal has arrived.
    public static func check() throws {
        if let s = shared.signal { throw Interrupted(signal: s) }
    }

    /// Records a signal; returns how many have arrived so far.
    @discardableResult
    public func request(_ signal: Int32) -> Int {
        lock.withLock {
            if first == 0 { first = signal }
            count += 1
            return count
        }
    }

    /// An action to run if the process has to exit before the work in hand ended (the grace
    /// period ran out, or a second signal). Returns a token for `remove`.
    public func onForcedExit(_ action: @escaping @Sendable () -> Void) -> Int {
        lock.withLock {
            nextAction += 1
            actions[nextAction] = action
            return nextAction
        }
    }

    public func remove(_ token: Int) {
        _ = lock.withLock { actions.removeValue(forKey: token) }
    }

    public static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        default: return "signal \(signal)"
        }
    }

    /// 128 + the signal: 130 for SIGINT, 143 for SIGTERM.
    public static func exitStatus(_ signal: Int32) -> Int32 { 128 + signal }

    /// Ignores the default action of SIGINT and SIGTERM and handles them on a queue of ours:
    /// the first asks the work to stop, a second (or the grace period running out) exits.
    public static func install() {
        for s in [SIGINT, SIGTERM] {
            Glibc.signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: DispatchQueue(label: "ceti.signal.\(s)"))
            source.setEventHandler { shared.received(s) }
            source.resume()
            sources.append(source)
        }
    }

    private func received(_ s: Int32) {
        let n = request(s)
        if n == 1 {
            DispatchQueue.global().asyncAfter(deadline: .now() + Self.graceSeconds) { [self] in
                finish(
                    "the work in hand did not end within \(Int(Self.graceSeconds)) s and was abandoned; rerun to resume",
                    runActions: true)
            }
        } else {
            finish("stopped at once (second signal); rerun to resume", runActions: true)
        }
    }

    /// After the command returned: one line on stderr and 130/143, when a signal arrived.
    public func exitIfInterrupted() {
        guard signal != nil else { return }
        finish("stopped after the current file; rerun to resume", runActions: false)
    }

    private func finish(_ why: String, runActions: Bool) {
        let (s, todo): (Int32, [@Sendable () -> Void]) = lock.withLock {
            if exiting { return (0, []) }
            exiting = true
            return (first, actions.sorted { $0.key < $1.key }.map(\.value))
        }
        // Another path is already exiting: it ends the process.
        guard s != 0 else {
            while true { pause() }
        }
        if runActions && !todo.isEmpty {
            // Each on a thread of its own, bounded: a dead network must not keep us alive.
            let group = DispatchGroup()
            for action in todo {
                group.enter()
                Thread.detachNewThread {
                    action()
                    group.leave()
                }
            }
            _ = group.wait(timeout: .now() + 15)
        }
        let line = "interrupted (\(Self.name(s))): \(why)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        fflush(nil)
        _exit(Self.exitStatus(s))
    }
}

/// Thrown at a check point once SIGINT or SIGTERM arrived.
public struct Interrupted: Error, CustomStringConvertible {
    public let signal: Int32
    public var description: String { "interrupted (\(Interrupt.name(signal)))" }
}
