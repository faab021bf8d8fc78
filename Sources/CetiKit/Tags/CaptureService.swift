/// The tag's recorder, `ceti-tag-data-capture`: stopped before a pull (`--stop-capture`) so no
/// file grows while it is copied, and always started again afterwards.
enum CaptureService {
    static let unit = "ceti-tag-data-capture"

    static func stop(_ session: SSHSession) throws {
        let command = "sudo -n systemctl stop \(unit)"
        let r = try session.exec(command)
        guard r.status == 0 else {
            throw SSHError.remoteCommand(host: session.host, command: command, status: r.status,
                                         stderr: r.stderr + " (nothing was pulled; the tag user needs passwordless sudo, or leave out --stop-capture)")
        }
    }

    /// Starts it again; returns a problem to report, or nil.
    static func start(_ session: SSHSession) -> String? {
        let command = "sudo -n systemctl start \(unit)"
        do {
            let r = try session.exec(command)
            if r.status == 0 { return nil }
            return "could not start \(unit) again (status \(r.status): \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))): start it by hand before the tag goes back to sea"
        } catch {
            return "could not start \(unit) again (\(error)): start it by hand before the tag goes back to sea"
        }
    }
}
