/// What `ceti restore` did: each file restored, found already restored, or why not.
public struct RestoreSummary: Sendable, Encodable {
    public struct Problem: Sendable, Encodable, Equatable {
        /// The original's name (name form).
        public var name: String
        public var detail: String
    }

    public var source: String
    public var run: String
    public var device: String
    public var bucket: String
    public var directory: String
    public var dryRun = false
    /// Files the manifest lists that --only selected.
    public var files = 0
    public var restored = 0
    /// Found in the folder already, with the manifest's size and SHA-256.
    public var alreadyThere = 0
    /// Original bytes in the folder that match the manifest (restored now or before).
    public var bytes: Int64 = 0
    /// Bytes downloaded by this run (a resumed download counts only what it still fetched).
    public var downloaded: Int64 = 0
    /// --dry-run: the files that would be restored, and their objects' bytes.
    public var wouldRestore = 0
    public var wouldDownload: Int64 = 0
    /// The manifest has no `_COMPLETE` beside it (nil when read from a file).
    public var complete: Bool?
    /// What the operator should know that is not a failure (a raw layout that was not recorded).
    public var notes: [String] = []
    public var problems: [Problem] = []

    public var exitCode: Int32 { problems.isEmpty ? 0 : 1 }

    public var line: String {
        if dryRun {
            return "restore (dry run): \(device) run \(run): \(wouldRestore) file(s) to restore "
                + "(\(ByteSize.format(wouldDownload)) to download), \(alreadyThere) already in \(directory)"
        }
        let what = "\(device) run \(run): \(restored) file(s) restored, \(alreadyThere) already there"
        let tail = problems.isEmpty ? "all \(ByteSize.format(bytes)) as the manifest says" : "\(problems.count) not restored (listed above)"
        return "restore: \(what) in \(directory) (\(ByteSize.format(downloaded)) downloaded); \(tail)"
    }
}

extension RestoreSummary: RunSummary {}
