/// One logged-in connection to a tag, after its host key and hostname were checked: the four
/// things ceti does on a tag. Blocking and used from one thread at a time. Paths and names are in
/// name form (`NameCodec`). Over SSH/SFTP in real runs (`SSHTagConnection`); a memory tag in tests.
public protocol TagConnection: AnyObject {
    /// How errors name the tag's address (`host`, or `host:port`).
    var label: String { get }
    /// The tag's own hostname: its identity, a local folder and a ledger key.
    var name: String { get }
    /// The tag's clock at login (seconds since the epoch): "still being written" is by this clock.
    var now: Int64 { get }
    func list(_ directory: String) throws -> [RemoteFile]
    /// Streams `path` from `offset` to its end into `consume`; returns the bytes read.
    @discardableResult
    func read(_ path: String, from offset: Int64, _ consume: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64
    func exec(_ command: String) throws -> (status: Int32, stdout: [UInt8], stderr: String)
    func unlink(_ path: String) throws
}

/// Opens connections to tags. `expectedName`: the hostname the target must answer with (a key
/// pinned under it is checked before the password is sent).
public protocol TagConnector: Sendable {
    func connect(_ target: TagTarget, expectedName: String?) throws -> any TagConnection
}
