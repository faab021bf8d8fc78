/// What QC measured in one file (a recording or a sensor CSV) and the problems found in it.
/// Recorded in the ledger as it is measured (while the file is encoded, gzipped or pulled) and
/// listed in its manifest entry.
public struct FileQC: Codable, Sendable, Equatable {
    /// The file's name (in name form), without its folder.
    public var name: String
    public var audio: AudioQC?
    public var sensor: SensorQC?
    /// Why the file could not be analysed to its end (a damaged FLAC), or nil.
    public var error: String?
    /// As `QCJudge` found them with the thresholds in force; worst first.
    public var problems: [QCProblem] = []

    public init(name: String, audio: AudioQC? = nil, sensor: SensorQC? = nil, error: String? = nil) {
        self.name = name
        self.audio = audio
        self.sensor = sensor
        self.error = error
    }

    /// The kinds of file QC reads: recordings (raw, .bin with a layout, WAV, FLAC) and CSVs, and
    /// their compressed forms.
    public enum Kind: Sendable { case audio, sensor }

    public static func kind(of name: String) -> Kind? {
        let lower = name.lowercased()
        if lower.hasSuffix(".csv") || lower.hasSuffix(".csv.gz") { return .sensor }
        if lower.hasSuffix(".flac") || lower.hasSuffix(".wav") || lower.hasSuffix(".raw") { return .audio }
        if lower.hasSuffix(".bin"), RawLayout.fromName(name) != nil { return .audio }
        return nil
    }
}
