/// One device's QC: its verdict, every problem found (its files' and its timeline's) and the
/// recordings in time. In a manifest, `files` is absent (each entry holds its own `qc`).
public struct DeviceQC: Codable, Sendable, Equatable {
    public enum Verdict: String, Codable, Sendable, Comparable {
        case ok, warn, bad

        public static func < (a: Verdict, b: Verdict) -> Bool {
            let order: [Verdict] = [.ok, .warn, .bad]
            return order.firstIndex(of: a)! < order.firstIndex(of: b)!
        }
    }

    /// A recording placed in time by the start its name gives (`<epoch_ms>.flac`, `<µs>….bin`).
    public struct Recording: Codable, Sendable, Equatable {
        public var name: String
        public var startMs: Int64
        public var durationSeconds: Double
        /// From the end of the recording before to this one's start: negative for an overlap;
        /// nil for the first.
        public var gapBeforeSeconds: Double?
    }

    public var device: String
    public var verdict: Verdict
    /// Worst first, then by file and channel.
    public var problems: [QCProblem]
    /// In order of start; recordings whose name gives no start are not placed.
    public var timeline: [Recording]
    public var files: [FileQC]?
}
