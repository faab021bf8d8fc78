/// One sensor CSV's quality figures (issue #16). Every row number is a line number in the file,
/// the header being line 1, so that an editor's "go to line" lands on it. When the file has no
/// header, its columns are called "column 1", "column 2", … (and `header` is empty).
public struct SensorQC: Sendable, Codable, Equatable {
    public struct Gap: Sendable, Codable, Equatable {
        /// The line of the row the timestamp jumps to.
        public var row: Int64
        /// The timestamps either side, in epoch seconds (in the column's own units when
        /// `timestampUnit` is nil, as is `seconds`).
        public var from: Double
        public var to: Double
        public var seconds: Double
    }

    public struct Series: Sendable, Codable, Equatable {
        public var column: String
        /// In row order; a run with no value in this column is nil.
        public var points: [Float?]
    }

    public struct RangeProblem: Sendable, Codable, Equatable {
        public var column: String
        /// Values outside the plausible range.
        public var count: Int64
        /// The lowest and highest of those values, in the column's own unit, as is the range.
        public var min: Double
        public var max: Double
        public var plausibleMin: Double
        public var plausibleMax: Double
        public var unit: String
    }

    public var name: String
    public var header: [String]
    public var headerPresent: Bool
    /// Data rows, bad ones included; blank lines are not rows.
    public var rows: Int64
    /// Rows with the wrong number of fields, a non-numeric value in a numeric column, or that
    /// cannot be read at all (longer than 64 KiB, or a quote never closed). They take no part in
    /// any other check.
    public var badRows: Int64
    /// The first 5.
    public var firstBadRows: [Int64]
    public var timestampColumn: String?
    /// "s", "ms" or "us".
    public var timestampUnit: String?
    /// Rows whose timestamp is lower than the previous row's (equal ones are not counted).
    public var nonMonotonic: Int64
    public var firstNonMonotonicRow: Int64?
    public var medianIntervalSeconds: Double?
    /// The first 20 of `gapCount`: steps forward longer than `gapFactor` × the median interval.
    public var gaps: [Gap]
    public var gapCount: Int64
    public var outOfRange: [RangeProblem]
    public var frozenColumns: [String]
    /// Numeric columns over the file, for small plots: the first `SensorQCThresholds.plottedColumns`
    /// numeric columns but the timestamp, each the mean of about `plotPoints` equal runs of rows.
    public var series: [Series] = []
    /// One per defect (each a warning), for the operator; empty for a clean file.
    public var problems: [QCProblem]
}
