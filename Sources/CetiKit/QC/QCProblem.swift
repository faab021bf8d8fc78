/// One defect QC found, for the operator and for scripts: how serious, what kind, where (file,
/// channel or column) and a sentence saying it.
public struct QCProblem: Codable, Sendable, Equatable {
    public enum Severity: String, Codable, Sendable, Comparable {
        case warn, bad

        public static func < (a: Severity, b: Severity) -> Bool { a == .warn && b == .bad }
    }

    public enum Kind: String, Codable, Sendable {
        // A recording.
        case deadChannel = "dead_channel"
        case clipping
        case dcOffset = "dc_offset"
        case stuckSamples = "stuck_samples"
        /// The file could not be read or decoded to its end (a FLAC that fails its CRC or MD5).
        case damaged
        // A device's recordings, in time.
        case gap
        case overlap
        // A sensor CSV.
        case empty
        case noHeader = "no_header"
        case badRows = "bad_rows"
        case noTimestamp = "no_timestamp"
        case timestampBackwards = "timestamp_backwards"
        case timestampGap = "timestamp_gap"
        case outOfRange = "out_of_range"
        case frozenColumn = "frozen_column"
    }

    public var severity: Severity
    public var kind: Kind
    /// The file's name (in name form); for a timeline gap, the recording after it.
    public var file: String?
    /// 0-based.
    public var channel: Int?
    /// A CSV column, as its header names it.
    public var column: String?
    public var message: String

    public init(
        _ severity: Severity, _ kind: Kind, file: String?, channel: Int? = nil, column: String? = nil, message: String
    ) {
        self.severity = severity
        self.kind = kind
        self.file = file
        self.channel = channel
        self.column = column
        self.message = message
    }
}
