/// What a `ceti watch` run did (with `--once`, its one scan): each session's state at the end,
/// and the sessions uploaded or failed.
public struct WatchSummary: Sendable, Encodable {
    public var scans = 0
    public var uploaded: [String] = []
    public var failed: [String] = []
    public var sessions: [WatchStatus.Session] = []

    public var exitCode: Int32 { failed.isEmpty ? 0 : 1 }

    public var line: String {
        let waiting = sessions.filter { $0.state == .waiting || $0.state == .incomplete }.count
        return "watch: \(scans) scan(s); \(uploaded.count) session(s) uploaded, \(failed.count) failed, \(waiting) waiting"
            + (failed.isEmpty ? "" : " (listed above)")
    }
}

extension WatchSummary: RunSummary {}
