import Foundation

/// Where ceti talks to the operator: results on stdout, messages and progress on stderr. A live
/// progress line (only on a terminal) is cleared before any other line is printed.
public final class Console: @unchecked Sendable {
    /// `-v` is `.verbose`, `-vv` `.debug` (everything `.verbose` prints, and `debug` lines).
    public enum Verbosity: Int, Sendable { case quiet = 0, normal = 1, verbose = 2, debug = 3 }

    public let verbosity: Verbosity
    public let json: Bool
    public let stderrIsTTY: Bool
    private let lock = NSLock()
    private var statusLine: String?
    /// `--log-file`: every line printed (not the live progress line), time-stamped, appended.
    private let logFD: Int32?

    public init(verbosity: Verbosity = .normal, json: Bool = false, logFile: String? = nil) {
        self.verbosity = verbosity
        self.json = json
        self.stderrIsTTY = isatty(2) == 1
        logFD = logFile.map { Glibc.open($0, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600) }.flatMap { $0 >= 0 ? $0 : nil }
    }

    deinit { if let logFD { close(logFD) } }

    /// Whether `path` can take the log (opened for appending, created 0600 if missing): nil if so,
    /// else why not.
    public static func logFileProblem(_ path: String) -> String? {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        close(fd)
        return nil
    }

    /// Whether result lines are printed at all (not with --quiet or --json): lets callers skip
    /// building thousands of lines nobody sees.
    public var showsResults: Bool { !json && verbosity != .quiet }

    /// A result line (stdout); suppressed by --quiet and --json.
    public func result(_ line: String) {
        guard showsResults else { return }
        write(line, to: 1)
    }

    /// Always printed (stdout): the JSON document, or a summary.
    public func output(_ line: String) { write(line, to: 1) }

    public func info(_ line: String) {
        guard verbosity != .quiet, !json else { return }
        write(line, to: 2)
    }

    public func verbose(_ line: String) {
        guard verbosity.rawValue >= Verbosity.verbose.rawValue else { return }
        write(line, to: 2)
    }

    /// Printed only with -vv.
    public func debug(_ line: String) {
        guard verbosity == .debug else { return }
        write(line, to: 2)
    }

    /// Errors and warnings always reach stderr, even with --quiet or --json.
    public func error(_ line: String) { write("ceti: " + line, to: 2) }

    /// Replaces the live progress line (terminal only, not with --quiet or --json).
    public func status(_ line: String?) {
        guard stderrIsTTY, verbosity != .quiet, !json else { return }
        lock.lock()
        defer { lock.unlock() }
        statusLine = line
        Self.put("\r\u{1b}[K" + (line ?? ""), 2)
    }

    private func write(_ line: String, to fd: Int32) {
        lock.lock()
        defer { lock.unlock() }
        if statusLine != nil { Self.put("\r\u{1b}[K", 2) }
        // Names inside messages (a file on a tag, a path) can hold CR, ESC and other controls:
        // escaped here too, so nothing printed can move the cursor or forge a line.
        let text = line.printableLines + "\n"
        Self.put(text, fd)
        if let logFD {
            let stamp = Timestamp.now() + (fd == 1 ? " out " : " err ")
            Self.put(
                text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
                    .map { stamp + $0 }.joined(separator: "\n") + "\n", logFD)
        }
        if let statusLine { Self.put(statusLine, 2) }
    }

    private static func put(_ text: String, _ fd: Int32) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            bytes = bytes.dropFirst(n)
        }
    }
}
