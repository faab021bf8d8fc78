public struct SensorQCThresholds: Sendable, Equatable {
    /// What a column's values can plausibly be: applied to the columns whose header both names the
    /// quantity and states its unit, in brackets ("Pressure [bar]") or parentheses. The unit is
    /// required because the same words name columns that are no measurement of it: the system
    /// monitor's "PressureTemp CPU" is the CPU core the pressure thread runs on.
    public struct PlausibleRange: Sendable, Equatable {
        public var quantity: String
        /// A case-insensitive regular expression on the header's name without its unit, lowercased,
        /// with each run of other characters than letters and digits made one space: "Battery V1
        /// [V]" is matched as "battery v1", "Quat_accuracy" as "quat accuracy".
        public var namePattern: String
        /// The units accepted, as written in the header (lowercased, without spaces and '°'), each
        /// with how many of it make one `unit` (1000 mbar to the bar).
        public var units: [String: Double]
        public var unit: String
        public var min: Double
        public var max: Double

        public init(quantity: String, namePattern: String, units: [String: Double], unit: String, min: Double, max: Double) {
            self.quantity = quantity
            self.namePattern = namePattern
            self.units = units
            self.unit = unit
            self.min = min
            self.max = max
        }

        /// The tag's sensors, as Project CETI's firmware names them (utils/logging.c and
        /// sensors/*.c in whale-tag-embedded). The first range that matches a column applies.
        public static let tag: [PlausibleRange] = [
            // The tag's depth sensor is a Keller 4LD of 200 bar full scale, zeroed at the surface
            // (pressure_temperature.h): more than 200 bar is past its full scale (and ~2,000 m,
            // about the deepest a sperm whale dives), less than -1 bar is less than a vacuum. The
            // firmware's reading with no sensor connected, -228.63 bar, falls outside.
            PlausibleRange(
                quantity: "pressure", namePattern: #"\bpressure\b"#,
                units: ["bar": 1, "mbar": 1000, "hpa": 1000, "dbar": 10, "kpa": 100, "pa": 100_000],
                unit: "bar", min: -1, max: 200),
            // The water temperature only ("Water Temperature [C]", or "Temperature [C]" beside the
            // pressure): seawater freezes near -2 °C and the warmest surface water is near 35 °C,
            // with a margin for a tag warming on deck. Board and battery temperatures run hotter by
            // design and are named otherwise. With no sensor the firmware reads -117.10 °C.
            PlausibleRange(
                quantity: "water temperature", namePattern: #"^(water )?temp(erature)?$"#,
                units: ["c": 1, "degc": 1, "celsius": 1], unit: "C", min: -5, max: 45),
            // One Li-ion cell ("Battery V1 [V]", "Battery V2 [V]": the MAX17320 reports each cell
            // of the tag's pack): charged to 4.2 V, cut off by the BMS near 3 V; below 2.5 V or
            // above 4.5 V the cell is dead or the reading is not a cell voltage.
            PlausibleRange(
                quantity: "battery cell voltage", namePattern: #"\bbattery\b.*\b(v ?\d+|cells?)\b"#,
                units: ["v": 1, "mv": 1000], unit: "V", min: 2.5, max: 4.5),
            // A whole pack, cells unknown: only a negative voltage or more than a small pack's is
            // implausible.
            PlausibleRange(
                quantity: "battery voltage", namePattern: #"\bbattery\b"#,
                units: ["v": 1, "mv": 1000], unit: "V", min: 0, max: 20),
        ]
    }

    /// A timestamp step longer than gapFactor × the median interval is a gap: 10 lets a sensor
    /// miss several samples in a row (a busy I2C bus, a slow SD card write) unreported, while any
    /// stop of the logger, however short, is reported.
    public var gapFactor: Double
    /// A numeric column with the same value in every row is frozen only over at least this many
    /// rows: fewer, and a slow sensor (battery state of charge, 1 Hz) may well not have changed.
    public var minRowsForFrozen: Int64
    /// Plotted: the first 6 numeric columns (but the timestamp and those constant by nature), in
    /// about 100 points each: small plots, a few KiB of JSON per file.
    public var plottedColumns = 6
    public var plotPoints = 100
    public var ranges: [PlausibleRange]
    /// Columns constant by nature, never reported frozen (matched as `PlausibleRange.namePattern`).
    /// From the tag's own headers: the system monitor's per-thread CPU assignments ("Audio SPI
    /// CPU"), the battery's "Status" and "Protection Alerts", the IMU's "Quat_accuracy" and
    /// "Accel_status", the ECG's "Leads-Off-P"; and ids, serial numbers, versions, units.
    /// Besides, a column that is -1 throughout is never frozen: -1 is the firmware's "not
    /// available" (the "RTC Count" of a tag without an RTC, the CPU of a thread not started).
    public var constantByNature: String

    public init(
        gapFactor: Double = 10, minRowsForFrozen: Int64 = 100, ranges: [PlausibleRange] = PlausibleRange.tag,
        constantByNature: String = #"\b(id|serial|version|units?|cpu|status|alerts?|accuracy|flags?)\b|\bleads off\b"#
    ) {
        self.gapFactor = gapFactor
        self.minRowsForFrozen = minRowsForFrozen
        self.ranges = ranges
        self.constantByNature = constantByNature
    }
}
