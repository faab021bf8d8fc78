import Foundation
import Yams

/// Where QC draws its lines: the config file's `qc:` section, every key optional.
///
///     qc:
///       dead_floor_dbfs: -90        # a channel quieter than this (DC removed) is dead: bad
///       stuck_run_seconds: 0.1      # identical samples this long are stuck: warn
///       clipping_warn_percent: 0.01 # share of clipped samples in a channel: warn …
///       clipping_bad_percent: 1     # … and bad
///       dc_offset_warn_percent: 1   # |mean| as a share of full scale: warn
///       gap_warn_seconds: 1         # a hole (or overlap) between recordings: warn …
///       gap_bad_seconds: 60         # … and a recorder stopped this long: bad
///       sensor_gap_factor: 10       # a CSV timestamp step longer than this × the median: warn
public struct QCThresholds: Sendable, Equatable {
    public var audio = AudioQCThresholds()
    public var sensor = SensorQCThresholds()
    /// Shares (0…1), not percent.
    public var clippingWarn = 0.0001
    public var clippingBad = 0.01
    public var dcOffsetWarn = 0.01
    public var gapWarnSeconds = 1.0
    /// 60 s: a tag's recorder rotates its files with no gap, so a minute missing is the recorder
    /// stopping (a crash, a full card, a brown-out), not the rotation.
    public var gapBadSeconds = 60.0

    public init() {}

    static let keys: [String: @Sendable (inout QCThresholds, Double) -> Void] = [
        "dead_floor_dbfs": { $0.audio.deadFloorDBFS = $1 },
        "stuck_run_seconds": { $0.audio.stuckRunSeconds = $1 },
        "clipping_warn_percent": { $0.clippingWarn = $1 / 100 },
        "clipping_bad_percent": { $0.clippingBad = $1 / 100 },
        "dc_offset_warn_percent": { $0.dcOffsetWarn = $1 / 100 },
        "gap_warn_seconds": { $0.gapWarnSeconds = $1 },
        "gap_bad_seconds": { $0.gapBadSeconds = $1 },
        "sensor_gap_factor": { $0.sensor.gapFactor = $1 },
    ]

    /// The `qc:` section of `config` (defaults where absent). A wrong key or value is a
    /// `ConfigError` naming the file, line and key (exit status 2).
    public static func load(_ config: ConfigFile) throws -> QCThresholds {
        var t = QCThresholds()
        guard let text = config.text, let root = try? Yams.compose(yaml: text), let section = root.mapping?[Node("qc")] else {
            return t
        }
        let file = config.path ?? "(defaults)"
        func fail(_ node: Node, _ key: String, _ message: String) -> ConfigFile.ConfigError {
            .value(path: file, line: node.mark?.line, key: key, message: message)
        }
        if case .scalar = section, section.null != nil { return t }
        guard let map = section.mapping else {
            throw fail(section, "qc", "expected a mapping of thresholds, e.g. `qc: {gap_bad_seconds: 60}`")
        }
        for (k, v) in map {
            let key = k.string ?? "\(k.any)"
            guard let set = keys[key] else {
                throw fail(k, "qc.\(key)", "unknown threshold; known: " + keys.keys.sorted().joined(separator: ", "))
            }
            guard let text = v.scalar?.string, let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
                throw fail(v, "qc.\(key)", "expected a number, e.g. `\(key): 1`")
            }
            if key != "dead_floor_dbfs" && value < 0 { throw fail(v, "qc.\(key)", "\(text) is negative; give 0 or more") }
            set(&t, value)
        }
        if t.clippingWarn > t.clippingBad {
            throw ConfigFile.ConfigError.value(
                path: file, line: map[Node("clipping_warn_percent")]?.mark?.line, key: "qc.clipping_warn_percent",
                message: "is above clipping_bad_percent; warn must not be stricter than bad")
        }
        if t.gapWarnSeconds > t.gapBadSeconds {
            throw ConfigFile.ConfigError.value(
                path: file, line: map[Node("gap_warn_seconds")]?.mark?.line, key: "qc.gap_warn_seconds",
                message: "is above gap_bad_seconds; warn must not be stricter than bad")
        }
        return t
    }
}
