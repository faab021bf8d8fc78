/// Tags over SSH: connect, check the host key against the pinned one (before the password is sent
/// where a key is pinned under the expected name), log in, read the tag's hostname and clock.
public struct SSHTagConnector: TagConnector {
    let port: Int
    let login: SSHLogin
    let knownHosts: KnownHosts
    let acceptNewHostKey: Set<String>
    let console: Console

    init(options: PullOptions, knownHosts: KnownHosts, console: Console) {
        port = options.port
        login = options.login
        self.knownHosts = knownHosts
        acceptNewHostKey = options.acceptNewHostKey
        self.console = console
    }

    /// Whale tags are named `wt-` and at least six lowercase hex (or alphanumeric) characters.
    static func isTagName(_ name: String) -> Bool {
        name.hasPrefix("wt-") && name.count >= 9
            && name.dropFirst(3).allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }

    public func connect(_ target: TagTarget, expectedName: String?) throws -> any TagConnection {
        try open(target, expectedName: expectedName)
    }

    /// With `tagsOnly`, a host whose name is not a tag's is left before its key is pinned.
    func open(_ target: TagTarget, expectedName: String?, tagsOnly: Bool = false) throws -> SSHTagConnection {
        let address = target.address
        let session = try SSHSession(host: address, port: target.port ?? port)
        let key = session.hostKey
        // Check what can be checked before the password is sent: a key pinned under a name.
        if let name = expectedName ?? knownHosts.name(forKey: key.base64) {
            try check(name, key: key, address: address)
        }
        try session.authenticate(login)
        let info = try session.exec("hostname; date +%s")
        let lines = String(decoding: info.stdout, as: UTF8.self).split(separator: "\n").map(String.init)
        guard info.status == 0, lines.count >= 2, let now = Int64(lines[1].trimmingCharacters(in: .whitespaces)) else {
            throw SSHError.remoteCommand(host: address, command: "hostname; date +%s", status: info.status, stderr: info.stderr)
        }
        let name = lines[0].trimmingCharacters(in: .whitespaces)
        // The name becomes a local folder and a ledger key: nothing that could climb out of --staging.
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", !name.hasPrefix(".") else {
            throw SSHError.protocolError(host: address, operation: "reading its hostname", message: "'\(name)' cannot name a folder")
        }
        if tagsOnly && !Self.isTagName(name) { throw DiscoveryError.notATag(address: address, name: name) }
        try check(name, key: key, address: address)
        console.debug("\(session.label): logged in, hostname \(name), clock \(now)")
        return SSHTagConnection(session: session, name: name, now: now, console: console)
    }

    private func check(_ name: String, key: (type: String, base64: String, fingerprint: String), address: String) throws {
        switch knownHosts.verdict(name: name, type: key.type, key: key.base64) {
        case .trusted:
            return
        case .new:
            console.info("\(name) (\(address)): first contact, pinning host key \(key.fingerprint)")
            try knownHosts.pin(name: name, type: key.type, key: key.base64)
        case .changed(let pinned):
            guard acceptNewHostKey.contains(name) else {
                throw SSHError.hostKeyChanged(
                    name: name, address: address, pinned: pinned, presented: key.fingerprint,
                    knownHosts: knownHosts.path)
            }
            console.info("\(name) (\(address)): accepting its new host key \(key.fingerprint) (was \(pinned))")
            try knownHosts.pin(name: name, type: key.type, key: key.base64)
        }
    }
}

/// A logged-in SSH session and its SFTP channel (opened on first use), each step logged at -vv.
final class SSHTagConnection: TagConnection {
    let session: SSHSession
    let name: String
    let now: Int64
    private let console: Console
    private var sftpClient: SFTPClient?

    init(session: SSHSession, name: String, now: Int64, console: Console) {
        self.session = session
        self.name = name
        self.now = now
        self.console = console
    }

    var label: String { session.label }

    private func sftp() throws -> SFTPClient {
        if let sftpClient { return sftpClient }
        let client = try SFTPClient(session: session)
        sftpClient = client
        return client
    }

    func list(_ directory: String) throws -> [RemoteFile] {
        let files = try sftp().list(directory)
        console.debug("\(label): listed \(directory.printable): \(files.count) entries")
        return files
    }

    @discardableResult
    func read(_ path: String, from offset: Int64, _ consume: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        console.debug("\(label): reading \(path.printable) from byte \(offset)")
        return try sftp().read(path, from: offset, consume)
    }

    func exec(_ command: String) throws -> (status: Int32, stdout: [UInt8], stderr: String) {
        let r = try session.exec(command)
        // The first word only: the rest may hold file names by the thousand.
        console.debug("\(label): ran \(String(command.prefix(60)).printable)…: exit \(r.status)")
        return r
    }

    func unlink(_ path: String) throws {
        try sftp().unlink(path)
        console.debug("\(label): deleted \(path.printable)")
    }
}
