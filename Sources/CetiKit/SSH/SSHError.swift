import Foundation

/// SSH and SFTP failures, named for the operator: which tag, what happened, what to do.
public enum SSHError: Error, CustomStringConvertible, Sendable {
    case connect(host: String, message: String)
    case handshake(host: String, message: String)
    /// The tag presented another host key than the one pinned for its name.
    case hostKeyChanged(name: String, address: String, pinned: String, presented: String, knownHosts: String)
    case authentication(user: String, host: String, method: String)
    case protocolError(host: String, operation: String, message: String)
    /// The connection died (reset, timeout, garbage) after the handshake.
    case connectionLost(host: String, during: String, message: String)
    case remoteCommand(host: String, command: String, status: Int32, stderr: String)

    public var description: String {
        switch self {
        case .connect(let host, let message):
            return "\(host): \(message); is the tag on the WiFi and powered?"
        case .handshake(let host, let message):
            return "\(host): SSH handshake failed: \(message)"
        case .hostKeyChanged(let name, let address, let pinned, let presented, let knownHosts):
            return "\(name) (\(address)) presented host key \(presented), but \(pinned) is pinned for it in \(knownHosts): "
                + "possibly another device using its name, or the tag was reflashed. Nothing was pulled or deleted; "
                + "if the tag was reflashed, rerun with --accept-new-host-key \(name)"
        case .authentication(let user, let host, let method):
            return "\(host): login as \(user) with \(method) was refused: check --user, --password-file / CETI_TAG_PASSWORD or --identity"
        case .protocolError(let host, let operation, let message):
            return "\(host): \(operation) failed: \(message)"
        case .connectionLost(let host, let during, let message):
            return "\(host): the connection was lost while \(during) (\(message)); is the tag still on the WiFi? rerun to go on"
        case .remoteCommand(let host, let command, let status, let stderr):
            let detail = stderr.isEmpty ? "" : ": \(stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
            return "\(host): `\(command.prefix(80))` exited with status \(status)\(detail)"
        }
    }
}
