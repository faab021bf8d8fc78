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
///
/// Failure rules: the initialiser either returns a session whose handshake completed and whose
/// host key is known, or throws having freed everything it made (no stored property is set
/// before that point, so Swift never runs `deinit` on a half-made session). Once the transport
/// fails (reset, timeout, garbage from the peer) the session is marked broken: later calls
/// throw at once instead of talking to a dead libssh2 session, and `deinit` only frees.
public final class SSHSession {
    public let host: String
    public let port: Int
    /// How errors name the server: `host`, or `host:port` when the port is not 22.
    public let label: String
    /// The server's host key: its algorithm name and base64 blob (as in known_hosts), and the
    /// SHA256:... fingerprint OpenSSH shows. Read once, right after the handshake.
    public let hostKey: (type: String, base64: String, fingerprint: String)
    let session: OpaquePointer
    private let socket: Int32
    private var sftpHandle: OpaquePointer?
    /// The transport failed: nothing more is sent on this session.
    private(set) var broken = false

    private static let globalInit: Void = { libssh2_init(0) }()

    /// Connects and completes the key exchange; authenticate before anything else.
    /// `handshakeTimeout` bounds the wait for the banner and the key exchange (a port that
    /// accepts and stays silent), `ioTimeoutSeconds` every later blocking call.
    public init(
        host: String, port: Int, connectTimeout: Double = 5, handshakeTimeout: Int = 20,
        ioTimeoutSeconds: Int = 60
    ) throws {
        _ = Self.globalInit
        let label = port == 22 ? host : (host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        let fd: Int32
        do {
            fd = try TCPSocket.connect(host: host, port: port, timeout: connectTimeout)
        } catch {
            throw SSHError.connect(host: label, message: "\(error)")
        }
        // Everything below frees what it made before throwing; stored properties are set last.
        let firstLine: String?
        do {
            firstLine = try Self.awaitBanner(fd, label: label, timeout: handshakeTimeout)
        } catch {
            close(fd)
            throw error
        }
        guard let s = libssh2_session_init_ex(nil, nil, nil, nil) else {
            close(fd)
            throw SSHError.handshake(host: label, message: "libssh2 could not create a session (out of memory?)")
        }
        libssh2_session_set_blocking(s, 1)
        libssh2_session_set_timeout(s, handshakeTimeout * 1000)
        let rc = libssh2_session_handshake(s, fd)
        if rc != 0 {
            let message = Self.lastError(of: s)
            libssh2_session_free(s)
            close(fd)
            if let firstLine {
                throw SSHError.handshake(host: label, message: "not an SSH server: it answered '\(firstLine)'")
            }
            throw SSHError.handshake(host: label, message: Self.isTransport(rc) ? "the connection was lost (\(message))" : message)
        }
        guard let key = Self.readHostKey(s) else {
            libssh2_session_free(s)
            close(fd)
            throw SSHError.handshake(host: label, message: "the server presented no usable host key")
        }
        // A dead link must not hang a pull forever.
        libssh2_session_set_timeout(s, ioTimeoutSeconds * 1000)
        self.host = host
        self.port = port
        self.label = label
        self.hostKey = key
        self.session = s
        self.socket = fd
    }

    deinit {
        if let sftpHandle { libssh2_sftp_shutdown(sftpHandle) }
        if !broken { libssh2_session_disconnect_ex(session, SSH_DISCONNECT_BY_APPLICATION, "ceti done", "") }
        libssh2_session_free(session)
        close(socket)
    }

    /// Waits for the server's first bytes without consuming them. Throws when it closes or resets
    /// before saying anything, or stays silent; returns the first line when it is not an SSH
    /// banner (to name what answered if the handshake then fails), nil when it looks like SSH.
    private static func awaitBanner(_ fd: Int32, label: String, timeout: Int) throws -> String? {
        let deadline = Date().addingTimeInterval(Double(timeout))
        var buffer = [UInt8](repeating: 0, count: 512)
        var graceUntil: Date?
        while true {
            let limit = min(graceUntil ?? deadline, deadline)
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(0, limit.timeIntervalSinceNow * 1000))
            let ready = poll(&pfd, 1, ms)
            if ready < 0 && errno == EINTR { continue }
            let n = ready > 0 ? recv(fd, &buffer, buffer.count, Int32(MSG_PEEK)) : 0
            if ready > 0 && n == 0 {
                throw SSHError.handshake(
                    host: label,
                    message: "it closed the connection without sending an SSH banner: "
                        + "not an SSH server, or one that refuses this machine")
            }
            if ready > 0 && n < 0 {
                throw SSHError.handshake(
                    host: label, message: "the connection was lost before the SSH banner (\(String(cString: strerror(errno))))")
            }
            let got = Array(buffer[0..<max(0, n)])
            // SSH, or too short to tell: let libssh2 go on.
            if got.starts(with: Array("SSH-".utf8)) || (!got.isEmpty && Array("SSH-".utf8).starts(with: got)) { return nil }
            // RFC 4253 allows lines before the banner: any line starting SSH- will do.
            if let text = String(bytes: got, encoding: .utf8), text.contains("\nSSH-") { return nil }
            if let graceUntil, Date() >= graceUntil {
                let line = got.prefix { $0 != 10 && $0 != 13 }.prefix(60)
                return String(decoding: line.map { (32..<127).contains($0) ? $0 : 63 }, as: UTF8.self)
            }
            if ready == 0 && graceUntil == nil {
                throw SSHError.handshake(host: label, message: "no SSH banner within \(timeout) s: not an SSH server, or a dead link")
            }
            if !got.isEmpty && graceUntil == nil { graceUntil = Date().addingTimeInterval(1) }
            if graceUntil != nil { usleep(50_000) }
        }
    }

    private static func readHostKey(_ s: OpaquePointer) -> (type: String, base64: String, fingerprint: String)? {
        var length = 0
        var type: Int32 = 0
        guard let raw = libssh2_session_hostkey(s, &length, &type), length > 0 else { return nil }
        let blob = [UInt8](UnsafeRawBufferPointer(start: raw, count: length))
        let names: [Int32: String] = [
            LIBSSH2_HOSTKEY_TYPE_RSA: "ssh-rsa", LIBSSH2_HOSTKEY_TYPE_DSS: "ssh-dss",
            LIBSSH2_HOSTKEY_TYPE_ECDSA_256: "ecdsa-sha2-nistp256", LIBSSH2_HOSTKEY_TYPE_ECDSA_384: "ecdsa-sha2-nistp384",
            LIBSSH2_HOSTKEY_TYPE_ECDSA_521: "ecdsa-sha2-nistp521", LIBSSH2_HOSTKEY_TYPE_ED25519: "ssh-ed25519",
        ]
        guard let name = names[type] else { return nil }
        let fingerprint = "SHA256:" + Digest.sha256(blob).base64.replacingOccurrences(of: "=", with: "")
        return (name, blob.base64, fingerprint)
    }

    private static func lastError(of s: OpaquePointer) -> String {
        var message: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        libssh2_session_last_error(s, &message, &length, 0)
        guard let message else { return "unknown error" }
        let text = String(cString: message)
        return text.isEmpty ? "unknown error" : text
    }

    /// Error codes that mean the connection itself is gone or unusable.
    static func isTransport(_ rc: Int32) -> Bool {
        [
            LIBSSH2_ERROR_SOCKET_NONE, LIBSSH2_ERROR_BANNER_RECV, LIBSSH2_ERROR_BANNER_SEND, LIBSSH2_ERROR_KEX_FAILURE,
            LIBSSH2_ERROR_SOCKET_SEND, LIBSSH2_ERROR_TIMEOUT, LIBSSH2_ERROR_SOCKET_DISCONNECT, LIBSSH2_ERROR_SOCKET_TIMEOUT,
            LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_DECRYPT, LIBSSH2_ERROR_PROTO,
            LIBSSH2_ERROR_HOSTKEY_INIT, LIBSSH2_ERROR_HOSTKEY_SIGN, LIBSSH2_ERROR_OUT_OF_BOUNDARY,
        ].contains(rc)
    }

    var lastError: String { Self.lastError(of: session) }

    var lastErrno: Int32 { libssh2_session_last_errno(session) }

    /// The error for a failed call: a lost connection (the session is marked broken) or `other`.
    func failure(_ operation: String, rc: Int32? = nil, other: ((String) -> SSHError)? = nil) -> SSHError {
        let code = rc.map { $0 < 0 ? $0 : lastErrno } ?? lastErrno
        let message = lastError
        if Self.isTransport(code) {
            broken = true
            return .connectionLost(host: label, during: operation, message: message)
        }
        return other?(message) ?? .protocolError(host: label, operation: operation, message: message)
    }

    /// Throws at once when an earlier call lost the connection.
    func ensureUsable(_ operation: String) throws {
        if broken { throw SSHError.connectionLost(host: label, during: operation, message: "the connection failed earlier") }
    }

    public func authenticate(_ login: SSHLogin) throws {
        try ensureUsable("logging in")
        if let identity = login.identity {
            let rc = libssh2_userauth_publickey_fromfile_ex(session, login.user, UInt32(login.user.utf8.count), nil, identity, nil)
            if rc == 0 { return }
            if Self.isTransport(rc) { throw failure("logging in with key \(identity)", rc: rc) }
            if rc == LIBSSH2_ERROR_FILE {
                throw SSHError.authentication(user: login.user, host: label, method: "key \(identity) (unusable: \(lastError))")
            }
            if login.password == nil {
                throw SSHError.authentication(user: login.user, host: label, method: "key \(identity)")
            }
        }
        guard let password = login.password else {
            throw SSHError.authentication(user: login.user, host: label, method: "no password or key")
        }
        let rc = libssh2_userauth_password_ex(
            session, login.user, UInt32(login.user.utf8.count),
            password, UInt32(password.utf8.count), nil)
        if rc == 0 { return }
        if Self.isTransport(rc) { throw failure("logging in", rc: rc) }
        let method = login.identity.map { "key \($0) or the password" } ?? "the password"
        throw SSHError.authentication(user: login.user, host: label, method: method)
    }

    /// Runs a command; returns its exit status, stdout and stderr (each capped at `limit` bytes).
    public func exec(_ command: String, limit: Int = 16 << 20) throws -> (status: Int32, stdout: [UInt8], stderr: String) {
        let what = "`\(command.prefix(60))`"
        try ensureUsable("running \(what)")
        guard let channel = libssh2_channel_open_ex(session, "session", 7, 2 * 1024 * 1024, 32768, nil, 0) else {
            throw failure("opening a channel for \(what)")
        }
        defer { libssh2_channel_free(channel) }
        guard libssh2_channel_process_startup(channel, "exec", 4, command, UInt32(command.utf8.count)) == 0 else {
            throw failure("starting \(what)")
        }
        var out: [UInt8] = []
        var err: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        // Read both streams until EOF; stderr is drained in between so the remote never blocks on it.
        while true {
            let n = buffer.withUnsafeMutableBytes { libssh2_channel_read_ex(channel, 0, $0.baseAddress, $0.count) }
            if n > 0 {
                if out.count < limit { out += buffer[0..<n] }
            } else if n < 0 && n != Int(LIBSSH2_ERROR_EAGAIN) {
                throw failure("reading from \(what)", rc: Int32(truncatingIfNeeded: n))
            }
            var e = 0
            repeat {
                e = buffer.withUnsafeMutableBytes { libssh2_channel_read_ex(channel, SSH_EXTENDED_DATA_STDERR, $0.baseAddress, $0.count) }
                if e > 0 && err.count < 65536 { err += buffer[0..<e] }
            } while e > 0
            if e < 0 && e != Int(LIBSSH2_ERROR_EAGAIN) && Self.isTransport(Int32(truncatingIfNeeded: e)) {
                throw failure("reading from \(what)", rc: Int32(truncatingIfNeeded: e))
            }
            if n == 0 && libssh2_channel_eof(channel) != 0 { break }
        }
        if libssh2_channel_close(channel) != 0 || libssh2_channel_wait_closed(channel) != 0 {
            // Output and EOF arrived; a close that fails means the link died right after.
            if Self.isTransport(lastErrno) { throw failure("closing \(what)") }
        }
        return (libssh2_channel_get_exit_status(channel), out, String(decoding: err, as: UTF8.self))
    }

    /// The session's SFTP channel, opened on first use.
    func sftp() throws -> OpaquePointer {
        if let sftpHandle { return sftpHandle }
        try ensureUsable("starting SFTP")
        guard let h = libssh2_sftp_init(session) else {
            throw failure("starting SFTP")
        }
        sftpHandle = h
        return h
    }

    /// Shell-quotes one argument for a POSIX shell: 'it'\''s'.
    public static func quote(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
