import Foundation

@testable import CetiKit

/// A whale tag in memory: its hostname, clock and host key, one data directory of files (names
/// in name form, see `NameCodec`) and optional empty sub-folders, the recorder's systemd units,
/// and what ceti did to it. Reached through `MemoryTagConnector`. Faults: a refused connection,
/// a connection that drops part-way through a read, a file that changes while it is read.
final class MemoryTag: @unchecked Sendable {
    struct File {
        var bytes: [UInt8]
        var mtime: Int64
    }

    enum Entry {
        case file(File)
        case folder
        case symlink
    }

    /// The recorder, as `CaptureService` names it.
    static let recorder = "ceti-tag-data-capture"

    let hostname: String
    /// The one directory that holds files, e.g. "/data".
    let directory: String
    let hostKey: String

    private struct State {
        var clock: Int64
        var entries: [String: Entry] = [:]
        var failConnect: SSHError?
        var refuseSudo = false
        var drops: [String: (bytes: Int64, breaksConnection: Bool)] = [:]
        var changes: [String: [UInt8]] = [:]
        var garbles: [String: Int64] = [:]
        var commands: [String] = []
        var reads: [String: Int] = [:]
        var bytesRead: Int64 = 0
        var unlinked: [String] = []
        var connections = 0
        var activeUnits: Set<String> = [MemoryTag.recorder]
        /// Armed systemd-run timers ("NAME.timer") and the command each one runs.
        var timers: [String: [String]] = [:]
    }

    private let lock = NSLock()
    private var state: State

    init(hostname: String, directory: String = "/data", clock: Int64 = 1_700_000_000) {
        self.hostname = hostname
        self.directory = directory
        self.hostKey = "SHA256:memory-\(hostname)"
        state = State(clock: clock)
    }

    private func locked<R>(_ body: (inout State) throws -> R) rethrows -> R { try lock.withLock { try body(&state) } }

    // MARK: contents

    /// The tag's clock (seconds since the epoch); a connection reads it at login.
    var clock: Int64 {
        get { locked { $0.clock } }
        set { locked { $0.clock = newValue } }
    }

    /// Names are kept in name form; a raw name ("a\rb") given here is turned into it ("a%0Db"),
    /// so both name the same file, as on the tag.
    private static func form(_ name: String) -> String { NameCodec.encode(NameCodec.decode(name)) }

    /// A file in the data directory; `mtime` defaults to an hour before the clock (settled).
    func add(_ name: String, bytes: [UInt8], mtime: Int64? = nil) {
        locked { $0.entries[Self.form(name)] = .file(File(bytes: bytes, mtime: mtime ?? $0.clock - 3600)) }
    }

    /// An (empty) sub-folder of the data directory: listed, never pulled.
    func addFolder(_ name: String) { locked { $0.entries[Self.form(name)] = .folder } }

    /// A symbolic link: listed as neither a regular file nor a folder.
    func addSymlink(_ name: String) { locked { $0.entries[Self.form(name)] = .symlink } }

    func bytes(of name: String) -> [UInt8]? {
        locked {
            guard case .file(let f) = $0.entries[Self.form(name)] else { return nil }
            return f.bytes
        }
    }

    /// Every entry of the data directory (files, folders, links), sorted.
    var names: [String] { locked { $0.entries.keys.sorted() } }

    // MARK: faults

    /// Every connection attempt fails with this error while it is set.
    var failConnect: SSHError? {
        get { locked { $0.failConnect } }
        set { locked { $0.failConnect = newValue } }
    }

    /// `sudo -n` fails as for a user without passwordless sudo.
    var refuseSudo: Bool {
        get { locked { $0.refuseSudo } }
        set { locked { $0.refuseSudo = newValue } }
    }

    /// The next read of `name` loses the connection once it has delivered `bytes` bytes (counted
    /// from where that read started). As with libssh2, the connection is then unusable (every
    /// later call on it fails) unless `breaksConnection` is false; a new connection works. Once.
    func dropAfter(bytes: Int64, of name: String, breaksConnection: Bool = true) {
        locked { $0.drops[Self.form(name)] = (bytes, breaksConnection) }
    }

    /// After the first chunk of the next read of `name`, the file becomes `bytes` (mtime: the
    /// clock): the recorder still writing it. The read goes on from the same offset in the new
    /// bytes, as a read of a changing file does. Once.
    func changeDuringRead(_ name: String, to bytes: [UInt8]) { locked { $0.changes[Self.form(name)] = bytes } }

    /// The next read of `name` delivers the byte at `offset` inverted (a link that corrupts what it
    /// carries); the file itself stays as it is. Once.
    func garbleInTransit(_ name: String, at offset: Int64) { locked { $0.garbles[Self.form(name)] = offset } }

    // MARK: what ceti did

    /// Every command run on the tag, in order.
    var commands: [String] { locked { $0.commands } }
    /// Read calls per name.
    var reads: [String: Int] { locked { $0.reads } }
    var bytesRead: Int64 { locked { $0.bytesRead } }
    /// Names deleted, in order.
    var unlinked: [String] { locked { $0.unlinked } }
    var connections: Int { locked { $0.connections } }
    /// Running systemd services (the recorder runs at first).
    var activeUnits: Set<String> { locked { $0.activeUnits } }
    /// Armed restart timers, "NAME.timer".
    var timers: Set<String> { locked { Set($0.timers.keys) } }

    /// Fires every armed timer (as when the grace period ends): each runs its `systemctl start`.
    func fireTimers() {
        locked { s in
            for (_, command) in s.timers where command.count >= 3 && command[0] == "systemctl" && command[1] == "start" {
                s.activeUnits.formUnion(command.dropFirst(2).map(Self.unit))
            }
            // --collect: a timer that fired is gone.
            s.timers = [:]
        }
    }

    // MARK: used by MemoryTagConnection

    fileprivate func noteConnection() throws -> Int64 {
        try locked {
            if let e = $0.failConnect { throw e }
            $0.connections += 1
            return $0.clock
        }
    }

    /// The name of `path` in the data directory, or nil for any other path.
    fileprivate func entryName(of path: String) -> String? {
        guard path.hasPrefix(directory + "/") else { return nil }
        let name = String(path.dropFirst(directory.count + 1))
        return name.isEmpty || name.contains("/") ? nil : name
    }

    fileprivate func list(_ dir: String, host: String) throws -> [RemoteFile] {
        let dir = dir.count > 1 && dir.hasSuffix("/") ? String(dir.dropLast()) : dir
        return try locked { s in
            if let sub = entryName(of: dir), case .folder = s.entries[sub] { return [] }
            guard dir == directory else {
                throw SSHError.protocolError(host: host, operation: "listing \(dir)", message: "no such file")
            }
            // SFTPClient sorts the listing by name.
            return s.entries.sorted { $0.key < $1.key }.map { name, entry in
                switch entry {
                case .file(let f):
                    return RemoteFile(name: name, size: Int64(f.bytes.count), mtime: f.mtime, isRegular: true, isDirectory: false)
                case .folder:
                    return RemoteFile(name: name, size: 4096, mtime: s.clock, isRegular: false, isDirectory: true)
                case .symlink:
                    return RemoteFile(name: name, size: 12, mtime: s.clock, isRegular: false, isDirectory: false)
                }
            }
        }
    }

    /// Starts a read: counts it and takes its faults (once each).
    fileprivate func beginRead(_ path: String, host: String) throws -> (
        name: String, drop: (bytes: Int64, breaksConnection: Bool)?, change: [UInt8]?, garble: Int64?
    ) {
        try locked { s in
            guard let name = entryName(of: path), case .file = s.entries[name] else {
                let missing = entryName(of: path).flatMap { s.entries[$0] } == nil
                throw SSHError.protocolError(host: host, operation: "opening \(path)", message: missing ? "no such file" : "failure")
            }
            s.reads[name, default: 0] += 1
            return (name, s.drops.removeValue(forKey: name), s.changes.removeValue(forKey: name), s.garbles.removeValue(forKey: name))
        }
    }

    /// Up to `count` bytes of the file as it is now, from `offset`, counted as read.
    fileprivate func chunk(_ name: String, at offset: Int64, count: Int) -> [UInt8] {
        locked { s in
            guard case .file(let f) = s.entries[name], offset < Int64(f.bytes.count) else { return [] }
            let bytes = Array(f.bytes[Int(offset)..<min(f.bytes.count, Int(offset) + count)])
            s.bytesRead += Int64(bytes.count)
            return bytes
        }
    }

    fileprivate func change(_ name: String, to bytes: [UInt8]) {
        locked { $0.entries[name] = .file(File(bytes: bytes, mtime: $0.clock)) }
    }

    fileprivate func unlink(_ path: String, host: String) throws {
        try locked { s in
            guard let name = entryName(of: path), let entry = s.entries[name] else {
                throw SSHError.protocolError(host: host, operation: "deleting \(path)", message: "no such file")
            }
            // SFTP's remove does not remove a folder.
            if case .folder = entry { throw SSHError.protocolError(host: host, operation: "deleting \(path)", message: "failure") }
            s.entries[name] = nil
            s.unlinked.append(name)
        }
    }

    // MARK: commands

    fileprivate func exec(_ command: String) -> (status: Int32, stdout: [UInt8], stderr: String) {
        locked { s in
            s.commands.append(command)
            if command == "hostname; date +%s" { return (0, Array("\(hostname)\n\(s.clock)\n".utf8), "") }
            if let (dir, names) = Self.checksumCommand(command) { return sha256sum(names, in: dir, s) }
            guard let words = Self.words(command), let first = words.first else {
                return (127, [], "memory tag: unsupported command\n")
            }
            guard words.count >= 3, words[0] == "sudo", words[1] == "-n" else {
                return (127, [], "sh: 1: \(first): not found\n")
            }
            if s.refuseSudo { return (1, [], "sudo: a password is required\n") }
            return systemd(Array(words.dropFirst(2)), &s)
        }
    }

    /// `systemctl stop|start|restart|is-active UNIT…` and `systemd-run … --unit=NAME CMD…`.
    private func systemd(_ words: [String], _ s: inout State) -> (status: Int32, stdout: [UInt8], stderr: String) {
        switch words[0] {
        case "systemctl" where words.count >= 3:
            let units = words.dropFirst(2)
            switch words[1] {
            case "stop":
                for u in units { if u.hasSuffix(".timer") { s.timers[u] = nil } else { s.activeUnits.remove(Self.unit(u)) } }
                return (0, [], "")
            case "start", "restart":
                s.activeUnits.formUnion(units.map(Self.unit))
                return (0, [], "")
            case "is-active":
                let states = units.map { s.activeUnits.contains(Self.unit($0)) ? "active" : "inactive" }
                return (states.allSatisfy { $0 == "active" } ? 0 : 3, Array(states.map { $0 + "\n" }.joined().utf8), "")
            default:
                return (1, [], "Unknown command verb \(words[1]).\n")
            }
        case "systemd-run":
            // Options up to the first word that is not one; the rest is the command to run.
            let options = words.dropFirst().prefix { $0.hasPrefix("-") }
            guard let unit = options.first(where: { $0.hasPrefix("--unit=") })?.dropFirst("--unit=".count), !unit.isEmpty
            else {
                return (1, [], "memory tag: systemd-run without --unit\n")
            }
            s.timers[String(unit) + ".timer"] = Array(words.dropFirst(1 + options.count))
            return (0, [], "")
        default:
            return (1, [], "sudo: \(words[0]): command not found\n")
        }
    }

    private static func unit(_ name: String) -> String { name.hasSuffix(".service") ? String(name.dropLast(8)) : name }

    /// What `cd DIR && printf NAMES | xargs -0 sha256sum --` prints: GNU's `HASH  NAME` lines
    /// (coreutils 9.1, Debian 12: a name holding a backslash, LF or CR escaped, its line starting
    /// with a backslash), a
    /// complaint on stderr for each name it cannot read, and xargs' 123 when any failed.
    private func sha256sum(_ names: [[UInt8]], in dir: [UInt8], _ s: State) -> (status: Int32, stdout: [UInt8], stderr: String) {
        let dirBytes = dir.count > 1 && dir.last == 0x2F ? Array(dir.dropLast()) : dir
        guard dirBytes == NameCodec.decodePath(directory) else {
            return (2, [], "sh: 1: cd: can't cd to \(String(decoding: dir, as: UTF8.self))\n")
        }
        // With no names, xargs runs sha256sum once without arguments: it hashes its empty stdin.
        if names.isEmpty { return (0, Array((Digest.sha256([UInt8]()).hex + "  -\n").utf8), "") }
        var out: [UInt8] = []
        var err = ""
        for name in names {
            let display = String(decoding: name, as: UTF8.self)
            switch s.entries[NameCodec.encode(name)] {
            case .file(let f):
                if name.contains(where: { [0x5C, 0x0A, 0x0D].contains($0) }) { out.append(0x5C) }
                out += Array((Digest.sha256(f.bytes).hex + "  ").utf8)
                for b in name {
                    switch b {
                    case 0x5C: out += [0x5C, 0x5C]
                    case 0x0A: out += [0x5C, 0x6E]
                    case 0x0D: out += [0x5C, 0x72]
                    default: out.append(b)
                    }
                }
                out.append(0x0A)
            case .folder:
                err += "sha256sum: \(display): Is a directory\n"
            case .symlink, nil:
                err += "sha256sum: \(display): No such file or directory\n"
            }
        }
        return (err.isEmpty ? 0 : 123, out, err)
    }

    /// The directory and names of the command `RemoteChecksums` builds, as the shell's printf
    /// gives them back; nil for any other command.
    static func checksumCommand(_ command: String) -> (dir: [UInt8], names: [[UInt8]])? {
        let head = "cd \"$(printf '"
        let middle = "/')\" && printf '"
        let tail = "' | xargs -0 sha256sum --"
        guard command.hasPrefix(head), command.hasSuffix(tail), command.count >= head.count + tail.count else { return nil }
        let inner = command.dropFirst(head.count).dropLast(tail.count)
        // Neither format can hold `'` (printed as an escape), so the first `/')"` ends the folder.
        guard let split = inner.range(of: middle) else { return nil }
        let dir = printf(inner[..<split.lowerBound]) + [0x2F]
        let names = printf(inner[split.upperBound...]).split(separator: 0).map(Array.init)
        return (dir, names)
    }

    /// The bytes `printf FORMAT` prints for a format without conversions: `\NNN` (one to three
    /// octal digits), `\\`, `\n`, `\t`, `%%`; every other character as itself.
    static func printf(_ format: Substring) -> [UInt8] {
        let b = Array(format.utf8)
        var out: [UInt8] = []
        var i = 0
        func isOctal(_ j: Int) -> Bool { j < b.count && (0x30...0x37).contains(b[j]) }
        while i < b.count {
            if b[i] == 0x5C, isOctal(i + 1) {
                var value = 0
                var j = i + 1
                while j < i + 4 && isOctal(j) {
                    value = value * 8 + Int(b[j] - 0x30)
                    j += 1
                }
                out.append(UInt8(truncatingIfNeeded: value))
                i = j
            } else if b[i] == 0x5C, i + 1 < b.count, let c = [0x5C: 0x5C, 0x6E: 0x0A, 0x74: 0x09][b[i + 1]] {
                out.append(UInt8(c))
                i += 2
            } else if b[i] == 0x25, i + 1 < b.count, b[i + 1] == 0x25 {
                out.append(0x25)
                i += 2
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return out
    }

    /// A simple command's words as sh splits them (single and double quotes, backslashes); nil
    /// when it holds anything else the shell would act on (`;`, `|`, `$`, redirections…).
    static func words(_ command: String) -> [String]? {
        var words: [String] = []
        var word: String?
        var quote: Character?
        var escaped = false
        for c in command {
            if escaped {
                word = (word ?? "") + String(c)
                escaped = false
            } else if let q = quote {
                if c == q { quote = nil } else if c == "\\" && q == "\"" { escaped = true } else { word = (word ?? "") + String(c) }
            } else if c == "'" || c == "\"" {
                quote = c
                word = word ?? ""
            } else if c == "\\" {
                escaped = true
            } else if c == " " || c == "\t" {
                if let w = word { words.append(w) }
                word = nil
            } else if ";&|<>()$`\n*?".contains(c) {
                return nil
            } else {
                word = (word ?? "") + String(c)
            }
        }
        guard quote == nil, !escaped else { return nil }
        if let w = word { words.append(w) }
        return words
    }
}

/// Connects to the memory tags by `TagTarget.address`.
struct MemoryTagConnector: TagConnector {
    let tags: [String: MemoryTag]

    init(_ tags: [String: MemoryTag]) { self.tags = tags }

    /// Each tag reachable under its hostname.
    init(_ tags: [MemoryTag]) { self.tags = Dictionary(tags.map { ($0.hostname, $0) }) { first, _ in first } }

    func connect(_ target: TagTarget, expectedName: String?) throws -> any TagConnection {
        let address = target.address
        // As SSHSession labels it (port 22, or the connector's own port, left out).
        let label = target.port.map { address.contains(":") ? "[\(address)]:\($0)" : "\(address):\($0)" } ?? address
        guard let tag = tags[address] else { throw SSHError.connect(host: label, message: "connection refused") }
        let now = try tag.noteConnection()
        // SSHTagConnector's check: the hostname becomes a local folder and a ledger key.
        let name = tag.hostname
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", !name.hasPrefix(".") else {
            throw SSHError.protocolError(host: address, operation: "reading its hostname", message: "'\(name)' cannot name a folder")
        }
        // Another device answered: SSHTagConnector finds its host key differs from the one
        // pinned under the expected name, before any password is sent.
        if let expectedName, expectedName != tag.hostname {
            throw SSHError.hostKeyChanged(
                name: expectedName, address: address, pinned: "SHA256:memory-\(expectedName)", presented: tag.hostKey,
                knownHosts: "memory")
        }
        return MemoryTagConnection(tag: tag, label: label, now: now)
    }
}

/// One logged-in connection to a memory tag. After a dropped read it is broken, as an SSH
/// session is: every later call fails at once.
final class MemoryTagConnection: TagConnection {
    let tag: MemoryTag
    let label: String
    let now: Int64
    var name: String { tag.hostname }
    private(set) var broken = false
    /// Reads are delivered in chunks of this size.
    static let chunk = 64 * 1024

    init(tag: MemoryTag, label: String, now: Int64) {
        self.tag = tag
        self.label = label
        self.now = now
    }

    private func ensureUsable(_ operation: String) throws {
        if broken { throw SSHError.connectionLost(host: label, during: operation, message: "the connection failed earlier") }
    }

    func list(_ directory: String) throws -> [RemoteFile] {
        try ensureUsable("listing \(directory)")
        return try tag.list(directory, host: label)
    }

    @discardableResult
    func read(_ path: String, from offset: Int64, _ consume: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        try ensureUsable("reading \(path)")
        let (name, drop, firstChange, garble) = try tag.beginRead(path, host: label)
        var change = firstChange
        var delivered: Int64 = 0
        while true {
            var want = Self.chunk
            if let drop {
                if delivered >= drop.bytes {
                    broken = drop.breaksConnection
                    throw SSHError.connectionLost(host: label, during: "reading \(path)", message: "connection reset by peer")
                }
                want = Int(min(Int64(want), drop.bytes - delivered))
            }
            // The file as it is now, chunk by chunk, as a real read of a file being written.
            var bytes = tag.chunk(name, at: offset + delivered, count: want)
            if bytes.isEmpty { break }
            if let garble, garble >= offset + delivered, garble < offset + delivered + Int64(bytes.count) {
                bytes[Int(garble - offset - delivered)] ^= 0xFF
            }
            try bytes.withUnsafeBytes(consume)
            delivered += Int64(bytes.count)
            if let new = change {
                tag.change(name, to: new)
                change = nil
            }
        }
        return delivered
    }

    func exec(_ command: String) throws -> (status: Int32, stdout: [UInt8], stderr: String) {
        try ensureUsable("running `\(command.prefix(60))`")
        return tag.exec(command)
    }

    func unlink(_ path: String) throws {
        try ensureUsable("deleting \(path)")
        try tag.unlink(path, host: label)
    }
}
