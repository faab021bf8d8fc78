import Foundation

/// The tag's recorder, `ceti-tag-data-capture`: stopped before a pull (`--stop-capture`) so no
/// file grows while it is copied, and always started again afterwards.
///
/// A dead-man's switch keeps a tag from going back to sea silent when ceti cannot restart the
/// recorder itself (kill -9, a laptop that dies, a tag that leaves the WiFi): before the recorder
/// is stopped, a transient systemd timer is armed on the tag
///
///     sudo -n systemd-run --quiet --collect --on-active=<grace>s --timer-property=AccuracySec=1s \
///         --unit=ceti-capture-restart-<id>-<n> systemctl start ceti-tag-data-capture
///
/// that starts it again after the grace period unless ceti cancels it. While the pull is healthy
/// a thread renews the switch every quarter of the grace period (a new timer is armed, then the
/// old one stopped, so one is always armed), so a pull of any length is never interrupted by it.
/// When arming fails the recorder is not stopped. ceti starts the recorder again itself on every
/// exit path it can catch (end, error, SIGINT, SIGTERM), then stops the timers. Every remote
/// argument is shell-quoted. The switch talks over an SSH session of its own, so it renews and
/// restarts even while the pull's session is blocked in a read.
final class CaptureService: @unchecked Sendable {
    static let unit = "ceti-tag-data-capture"
    /// Default grace period: long enough for a few failed renewals in a row on a poor link.
    static let defaultGraceSeconds = 600

    private let session: any TagConnection
    private let grace: Int
    private let console: Console
    /// Serialises every use of `session` (libssh2 sessions are not shareable between threads).
    private let lock = NSLock()
    private let wake = NSCondition()
    private var finished = false
    private var armed: [String] = []
    private let id: String
    private var serial = 0
    private var exitAction: Int?
    private var renewalWarned = false

    private init(session: any TagConnection, grace: Int, console: Console) {
        self.session = session
        self.grace = max(1, grace)
        self.console = console
        self.id = String(format: "%08x", UInt32.random(in: 0...UInt32.max))
    }

    private var host: String { session.label }

    /// Arms the switch, then stops the recorder, over `control` (a session of the switch's own).
    /// Throws (with the recorder left running, and nothing pulled) when either fails.
    static func stop(control: any TagConnection, graceSeconds: Int, console: Console) throws -> CaptureService {
        let service = CaptureService(session: control, grace: graceSeconds, console: console)
        try service.lock.withLock {
            let (name, r) = try service.arm()
            guard r.status == 0 else {
                throw SSHError.remoteCommand(
                    host: service.host, command: service.armCommand(name), status: r.status,
                    stderr: r.stderr + " (could not arm the restart timer for \(unit); the recorder was left running "
                        + "and nothing was pulled: the tag user needs passwordless sudo and systemd-run, or leave out --stop-capture)")
            }
            service.armed = [name]
        }
        // From here on, a forced exit (a second signal, a stuck transfer) still starts it again.
        service.exitAction = Interrupt.shared.onForcedExit { [service] in _ = service.restart() }
        let command = "sudo -n systemctl stop \(SSHSession.quote(unit))"
        let r: (status: Int32, stdout: [UInt8], stderr: String)
        do {
            r = try service.lock.withLock { try service.session.exec(command) }
        } catch {
            service.abandon()
            throw error
        }
        guard r.status == 0 else {
            service.abandon()
            throw SSHError.remoteCommand(
                host: service.host, command: command, status: r.status,
                stderr: r.stderr + " (nothing was pulled; the tag user needs passwordless sudo, or leave out --stop-capture)")
        }
        let renewer = Thread { [service] in service.renewLoop() }
        renewer.name = "ceti-capture-switch"
        renewer.start()
        return service
    }

    private func armCommand(_ name: String) -> String {
        let args = [
            "sudo", "-n", "systemd-run", "--quiet", "--collect", "--on-active=\(grace)s",
            "--timer-property=AccuracySec=1s", "--unit=\(name)", "systemctl", "start", Self.unit,
        ]
        return args.map(SSHSession.quote).joined(separator: " ")
    }

    /// Arms one more timer (caller holds `lock`).
    private func arm() throws -> (String, (status: Int32, stdout: [UInt8], stderr: String)) {
        serial += 1
        let name = "ceti-capture-restart-\(id)-\(serial)"
        return (name, try session.exec(armCommand(name)))
    }

    /// Stops the given timers (caller holds `lock`); true when that worked.
    @discardableResult
    private func cancel(_ names: [String]) -> Bool {
        guard !names.isEmpty else { return true }
        let command = (["sudo", "-n", "systemctl", "stop"] + names.map { $0 + ".timer" }).map(SSHSession.quote).joined(separator: " ")
        return (try? session.exec(command).status) == 0
    }

    /// The recorder could not be stopped: nothing to restart, the timers go.
    private func abandon() {
        lock.withLock {
            finished = true
            cancel(armed)
            armed = []
        }
        wake.lock(); wake.broadcast(); wake.unlock()
        if let exitAction { Interrupt.shared.remove(exitAction) }
    }

    /// Every quarter of the grace period: a new timer, then the old ones stopped.
    private func renewLoop() {
        let interval = max(0.5, Double(grace) / 4)
        while true {
            wake.lock()
            let deadline = Date().addingTimeInterval(interval)
            while !lock.withLock({ finished }) && Date() < deadline { _ = wake.wait(until: deadline) }
            wake.unlock()
            let done: Bool = lock.withLock {
                if finished { return true }
                var problem: String?
                do {
                    let (name, r) = try arm()
                    if r.status == 0 {
                        cancel(armed)
                        armed = [name]
                    } else {
                        problem = "status \(r.status): \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
                    }
                } catch {
                    problem = "\(error)"
                }
                if let problem, !renewalWarned {
                    renewalWarned = true
                    console.info(
                        "\(host): could not renew the restart timer of \(Self.unit) (\(problem)); "
                            + "unless a later renewal works, it starts the recorder within \(grace) s, during the pull")
                }
                return false
            }
            if done { return }
        }
    }

    /// Starts the recorder again and stops the timers; returns a problem to report, or nil.
    /// Safe to call more than once and from any thread: only the first call acts.
    func restart() -> String? {
        let problem: String? = lock.withLock {
            if finished { return nil }
            finished = true
            let command = "sudo -n systemctl start \(SSHSession.quote(Self.unit))"
            let failure: String
            do {
                let r = try session.exec(command)
                if r.status == 0 {
                    if !cancel(armed) {
                        console.verbose(
                            "\(host): could not stop the restart timer(s) \(armed.joined(separator: ", ")); they start the running recorder again, which does no harm"
                        )
                    }
                    armed = []
                    return nil
                }
                failure = "status \(r.status): \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
            } catch {
                failure = "\(error)"
            }
            // The timers stay armed: they try again.
            return "could not start \(Self.unit) again (\(failure)); the restart timer on the tag starts it within \(grace) s: "
                + "check `systemctl is-active \(Self.unit)` on the tag before it goes back to sea"
        }
        wake.lock(); wake.broadcast(); wake.unlock()
        if let exitAction { Interrupt.shared.remove(exitAction) }
        return problem
    }
}
