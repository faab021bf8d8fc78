import Foundation

/// Counts bytes and files of a long run and, on a terminal, redraws one line twice a second:
/// bytes done/total, rate, ETA, files done/skipped/failed.
public final class ProgressMeter: @unchecked Sendable {
    private let lock = NSLock()
    private let console: Console
    private let start = Date()
    private var totalBytes: Int64 = 0
    private var doneBytes: Int64 = 0
    private var sentBytes: Int64 = 0
    private var totalFiles = 0
    private var done = 0, skipped = 0, failed = 0
    private var timer: DispatchSourceTimer?

    public init(console: Console) {
        self.console = console
    }

    public func begin(files: Int, bytes: Int64) {
        lock.withLock {
            totalFiles = files; totalBytes = bytes
        }
        guard console.stderrIsTTY else { return }
        let t = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "ceti.progress"))
        t.schedule(deadline: .now() + 0.5, repeating: 0.5)
        t.setEventHandler { [weak self] in self?.redraw() }
        t.resume()
        timer = t
    }

    /// Work found after the start (a tag's files, once its folder is listed).
    public func add(files: Int, bytes: Int64) {
        lock.withLock {
            totalFiles += files; totalBytes += bytes
        }
    }

    public func end() {
        timer?.cancel()
        timer = nil
        console.status(nil)
    }

    /// Bytes that went over the wire, either way (negative when a failed attempt is undone).
    public func sent(_ n: Int64) {
        lock.withLock {
            sentBytes += n; doneBytes += n
        }
    }

    public func fileFinished(skippedBytes: Int64 = 0, skipped wasSkipped: Bool = false, failed wasFailed: Bool = false) {
        lock.withLock {
            doneBytes += skippedBytes
            if wasFailed { failed += 1 } else if wasSkipped { skipped += 1 } else { done += 1 }
        }
    }

    public var elapsed: TimeInterval { Date().timeIntervalSince(start) }

    public var bytesSent: Int64 { lock.withLock { sentBytes } }

    /// Bytes done and expected, and files finished of those expected.
    var counts: (doneBytes: Int64, totalBytes: Int64, files: Int, totalFiles: Int, failed: Int) {
        lock.withLock { (doneBytes, totalBytes, done + skipped + failed, totalFiles, failed) }
    }

    private func redraw() {
        let line: String = lock.withLock {
            let seconds = max(0.001, elapsed)
            let rate = Double(sentBytes) / seconds
            let remaining = Double(max(0, totalBytes - doneBytes))
            let eta = rate > 1 ? Self.duration(remaining / rate) : "--"
            return "\(ByteSize.format(doneBytes)) / \(ByteSize.format(totalBytes))  \(ByteSize.format(Int64(rate)))/s  ETA \(eta)  "
                + "files \(done + skipped + failed)/\(totalFiles) (\(skipped) skipped, \(failed) failed)"
        }
        console.status(line)
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t / 60 % 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}
