import CSSH2
import Foundation

/// How to log in to a tag.
public struct SSHLogin: Sendable {
    public var user: String
    /// Tried when set; never logged.
    public var password: String?
    /// Private key file (ed25519: libssh2 1.10 signs RSA only with SHA-1, which OpenSSH 9 refuses).
    public var identity: String?

    public init(user: String, password: String?, identity: String?) {
        self.user = user
        self.password = password
        self.identity = identity
    }
}

/// One libssh2 session over one TCP connection. Every call blocks: use it only on a thread of
/// our own (a BlockingPool), never on Swift's cooperative pool. Not shareable between threads.
public final class SSHSession {
    public let host: String
    public let port: Int
    let session: OpaquePointer
    private let socket: Int32
    private var sftpHandle: OpaquePointer?

    private static let globalInit: Void = { libssh2_init(0) }()

    /// Connects and completes the key exchange; authenticate before anything else.
    public init(host: String, port: Int, connectTimeout: Double = 5, ioTimeoutSeconds: Int = 60) throws {
        _ = Self.globalInit
        self.host = host
        self.port = port
        do {
            socket = try TCPSocket.connect(host: host, port: port, timeout: connectTimeout)
        } catch {
            throw SSHError.connect(host: host, message: "\(error)")
        }
        guard let s = libssh2_session_init_ex(nil, nil, nil, nil) else {
            close(socket)
            throw SSHError.handshake(host: host, message: "libssh2 could not create a session")
        }
        session = s
        libssh2_session_set_blocking(s, 1)
        // A dead link must not hang a pull forever.
        libssh2_session_set_timeout(s, ioTimeoutSeconds * 1000)
        if libssh2_session_handshake(s, socket) != 0 {
            let message = lastError
            libssh2_session_free(s)
            close(socket)
            throw SSHError.handshake(host: host, message: message)
        }
    }

    deinit {
        if let sftpHandle { libssh2_sftp_shutdown(sftpHandle) }
        libssh2_session_disconnect_ex(session, SSH_DISCONNECT_BY_APPLICATION, "ceti done", "")
        libssh2_session_free(session)
        close(socket)
    }

    var lastError: String {
        var message: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        libssh2_session_last_error(session, &message, &length, 0)
        return message.map { String(cString: $0) } ?? "unknown error"
    }

    var lastErrno: Int32 { libssh2_session_last_errno(session) }

    /// The server's host key: its algorithm name and base64 blob (as in known_hosts), and the
    /// SHA256:... fingerprint OpenSSH shows.
    public var hostKey: (type: String, base64: String, fingerprint: String) {
        var length = 0
        var type: Int32 = 0
        guard let raw = libssh2_session_hostkey(session, &length, &type) else { return ("unknown", "", "unknown") }
        let blob = [UInt8](UnsafeRawBufferPointer(start: raw, count: length))
        let names: [Int32: String] = [
            LIBSSH2_HOSTKEY_TYPE_RSA: "ssh-rsa", LIBSSH2_HOSTKEY_TYPE_DSS: "ssh-dss",
            LIBSSH2_HOSTKEY_TYPE_ECDSA_256: "ecdsa-sha2-nistp256", LIBSSH2_HOSTKEY_TYPE_ECDSA_384: "ecdsa-sha2-nistp384",
            LIBSSH2_HOSTKEY_TYPE_ECDSA_521: "ecdsa-sha2-nistp521", LIBSSH2_HOSTKEY_TYPE_ED25519: "ssh-ed25519",
        ]
        let fingerprint = "SHA256:" + Digest.sha256(blob).base64.replacingOccurrences(of: "=", with: "")
        return (names[type] ?? "unknown", blob.base64, fingerprint)
    }

    public func authenticate(_ login: SSHLogin) throws {
        if let identity = login.identity {
            let rc = libssh2_userauth_publickey_fromfile_ex(session, login.user, UInt32(login.user.utf8.count), nil, identity, nil)
            if rc == 0 { return }
            if login.password == nil {
                throw SSHError.authentication(user: login.user, host: host, method: "key \(identity)")
            }
        }
        guard let password = login.password else {
            throw SSHError.authentication(user: login.user, host: host, method: "no password or key")
        }
        let rc = libssh2_userauth_password_ex(session, login.user, UInt32(login.user.utf8.count),
                                              password, UInt32(password.utf8.count), nil)
        if rc != 0 {
            throw SSHError.authentication(user: login.user, host: host, method: "the password")
        }
    }

    /// Runs a command; returns its exit status, stdout and stderr (each capped at `limit` bytes).
    public func exec(_ command: String, limit: Int = 16 << 20) throws -> (status: Int32, stdout: [UInt8], stderr: String) {
        guard let channel = libssh2_channel_open_ex(session, "session", 7, 2 * 1024 * 1024, 32768, nil, 0) else {
            throw SSHError.protocolError(host: host, operation: "opening a channel", message: lastError)
        }
        defer { libssh2_channel_free(channel) }
        guard libssh2_channel_process_startup(channel, "exec", 4, command, UInt32(command.utf8.count)) == 0 else {
            throw SSHError.protocolError(host: host, operation: "starting `\(command.prefix(60))`", message: lastError)
        }
        var out: [UInt8] = []
        var err: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        // Read both streams until EOF; stderr is drained in between so the remote never blocks on it.
        while true {
            let n = buffer.withUnsafeMutableBytes { libssh2_channel_read_ex(channel, 0, $0.baseAddress, $0.count) }
            if n > 0 { if out.count < limit { out += buffer[0..<n] } } else if n < 0 {
                throw SSHError.protocolError(host: host, operation: "reading from `\(command.prefix(60))`", message: lastError)
            }
            var e = 0
            repeat {
                e = buffer.withUnsafeMutableBytes { libssh2_channel_read_ex(channel, SSH_EXTENDED_DATA_STDERR, $0.baseAddress, $0.count) }
                if e > 0 && err.count < 65536 { err += buffer[0..<e] }
            } while e > 0
            if n == 0 && libssh2_channel_eof(channel) != 0 { break }
        }
        libssh2_channel_close(channel)
        libssh2_channel_wait_closed(channel)
        return (libssh2_channel_get_exit_status(channel), out, String(decoding: err, as: UTF8.self))
    }

    /// The session's SFTP channel, opened on first use.
    func sftp() throws -> OpaquePointer {
        if let sftpHandle { return sftpHandle }
        guard let h = libssh2_sftp_init(session) else {
            throw SSHError.protocolError(host: host, operation: "starting SFTP", message: lastError)
        }
        sftpHandle = h
        return h
    }

    /// Shell-quotes one argument for a POSIX shell: 'it'\''s'.
    public static func quote(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
