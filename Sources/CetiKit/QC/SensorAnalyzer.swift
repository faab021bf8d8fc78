import Foundation

/// A streaming accumulator of `SensorQC`, fed a CSV's bytes in chunks cut anywhere (inside a
/// UTF-8 character, a CRLF or a quoted field), so that QC can run in the pass that gzips the file.
/// Memory is bounded whatever the file's size: one row (at most 64 KiB), the first 100 rows, the
/// first 4096 timestamp intervals and a few figures per column. Not thread-safe: one file, one
/// thread. Call `finish` once, after the last `feed`.
public final class SensorAnalyzer {
    /// The state lives in a struct, whose accesses within its own mutating methods are checked for
    /// exclusivity by the compiler: a class's stored properties are checked at run time on every
    /// access, which took half the time when the state was the class's own.
    private var engine: Engine

    public init(name: String, thresholds: SensorQCThresholds = .init()) {
        engine = Engine(name: name, thresholds: thresholds)
    }

    public func feed(_ bytes: UnsafeRawBufferPointer) {
        engine.feed(bytes)
    }

    public func finish() -> SensorQC {
        engine.finish()
    }

    /// Streams a file on disk through an analyzer, 1 MiB at a time.
    public static func analyze(path: String, name: String, thresholds: SensorQCThresholds = .init()) throws -> SensorQC {
        let analyzer = SensorAnalyzer(name: name, thresholds: thresholds)
        try FileIO.stream(path) { analyzer.feed($0) }
        return analyzer.finish()
    }

    private static let powersOfTen: [Double] = (1...22).reduce(into: [1]) { p, _ in p.append(p.last! * 10) }

    /// A decimal number ("-12", "1.013", ".5", "6.02e23", " 5 "), or nil: no "nan", "inf" or hex.
    /// By hand rather than strtod: no C string to build per field, and a 1 GiB ECG file holds
    /// some 100 million of them. Integers below 2^53 (an epoch in µs has 16 digits) are exact, and
    /// a decimal of up to 15 digits is correctly rounded: its digits divided by an exact power of ten.
    static func number(_ p: UnsafeBufferPointer<UInt8>, _ span: Range<Int>) -> Double? {
        let space = UInt8(ascii: " ")
        let tab = UInt8(ascii: "\t")
        let zero = UInt8(ascii: "0")
        var i = span.lowerBound
        var end = span.upperBound
        while i < end && (p[i] == space || p[i] == tab) { i += 1 }
        while end > i && (p[end - 1] == space || p[end - 1] == tab) { end -= 1 }
        guard i < end else { return nil }
        let negative = p[i] == UInt8(ascii: "-")
        if negative || p[i] == UInt8(ascii: "+") { i += 1 }
        var mantissa: UInt64 = 0
        var exponent = 0
        var digits = false
        var fraction = false
        while i < end {
            let d = p[i] &- zero
            if d < 10 {
                digits = true
                if mantissa < 100_000_000_000_000_000 {
                    mantissa = mantissa * 10 + UInt64(d)
                    if fraction { exponent -= 1 }
                } else if !fraction {
                    exponent += 1
                }
            } else if p[i] == UInt8(ascii: "."), !fraction {
                fraction = true
            } else {
                break
            }
            i += 1
        }
        guard digits else { return nil }
        if i < end && p[i] | 0x20 == UInt8(ascii: "e") {
            i += 1
            let negativeExponent = i < end && p[i] == UInt8(ascii: "-")
            if i < end && (negativeExponent || p[i] == UInt8(ascii: "+")) { i += 1 }
            var e = 0
            var expDigits = false
            while i < end && p[i] &- zero < 10 {
                e = min(e * 10 + Int(p[i] &- zero), 10_000)
                expDigits = true
                i += 1
            }
            guard expDigits else { return nil }
            exponent += negativeExponent ? -e : e
        }
        guard i == end else { return nil }
        var v = Double(mantissa)
        if exponent < 0 {
            v = -exponent < powersOfTen.count ? v / powersOfTen[-exponent] : v * pow(10, Double(exponent))
        } else if exponent > 0 {
            v = exponent < powersOfTen.count ? v * powersOfTen[exponent] : v * pow(10, Double(exponent))
        }
        guard v.isFinite else { return nil }
        return negative ? -v : v
    }

    /// "Battery V1 [V]" → ("battery v1", "V"); "Water Temp (°C)" → ("water temp", "°C"): the
    /// name lowercased, each run of other characters than letters and digits made one space; the
    /// unit as written.
    static func split(header: String) -> (name: String, unit: String?) {
        var name = Substring(header.trimmingCharacters(in: .whitespaces))
        var unit: String?
        for (open, close) in [("[", "]"), ("(", ")")] where name.hasSuffix(close) {
            if let at = name.lastIndex(of: Character(open)) {
                unit = name[name.index(after: at)..<name.index(before: name.endIndex)].trimmingCharacters(in: .whitespaces)
                name = name[..<at]
                break
            }
        }
        let words = name.lowercased().split { !$0.isLetter && !$0.isNumber }
        return (words.joined(separator: " "), unit)
    }

    /// A unit as `PlausibleRange.units` keys it: "°C" → "c", "deg C" → "degc".
    static func unitKey(_ unit: String) -> String {
        unit.lowercased().filter { $0 != " " && $0 != "°" }
    }

    /// An epoch time's unit from its size: 1e8 s is 1973, and 1e11 s is the year 5138.
    static func epochUnit(_ v: Double) -> String? {
        switch v {
        case 1e14..<1e17: return "us"
        case 1e11..<1e14: return "ms"
        case 1e8..<1e11: return "s"
        default: return nil
        }
    }

    /// A time unit as a header writes it, for timestamps that are not epoch times (since boot).
    static func timeUnit(_ text: String) -> String? {
        switch text {
        case "us", "µs", "μs", "usec", "microseconds": return "us"
        case "ms", "msec", "milliseconds": return "ms"
        case "s", "sec", "seconds": return "s"
        default: return nil
        }
    }

    /// 600.0000000001 → "600", 0.1 → "0.1", 1.0134 → "1.01", -228.63 → "-228.6".
    static func format(_ v: Double) -> String {
        let text = String(format: abs(v) >= 100 ? "%.1f" : "%.3g", v)
        return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
    }
}

extension SensorAnalyzer {
    private enum Kind { case undecided, numeric, text }
    private enum State { case fieldStart, unquoted, quoted, quoteInQuoted }
    private enum BadReason: Int, CaseIterable { case fieldCount, nonNumeric, unreadable }

    /// What the result needs of a column besides its figures.
    private struct Column {
        let name: String
        let exempt: Bool
        /// The plausible range, in the column's unit.
        let range: (min: Double, max: Double, unit: String)?
    }

    /// A column's figures, updated on every row.
    private struct Figures {
        /// The row being checked: its value, when present (a number), and what its field tells
        /// an undecided column (numeric, text, or nothing when blank).
        var value = 0.0
        var present = false
        var vote = Kind.undecided
        var kind = Kind.undecided
        var plotted = false
        /// Frozen unless `changed`.
        var changed = false
        var values: Int64 = 0
        var first = 0.0
        /// The plausible range, when `ranged`.
        var ranged = false
        var low = 0.0
        var high = 0.0
        var outside: Int64 = 0
        var lowest = Double.infinity
        var highest = -Double.infinity
        /// The plot's unfinished run.
        var plotSum = 0.0
        var plotCount: Int32 = 0

        /// A good row's value, in `value`.
        mutating func add() {
            let v = value
            if values == 0 {
                first = v
            } else if v != first {
                changed = true
            }
            values += 1
            if plotted {
                plotSum += v
                plotCount += 1
            }
            if ranged && (v < low || v > high) {
                outside += 1
                lowest = min(lowest, v)
                highest = max(highest, v)
            }
        }
    }

    /// The figures in memory of their own, allocated once the header is read: the per-row loops
    /// reach them through a pointer, without an array's uniqueness and bounds checks on each access.
    private final class Table {
        let count: Int
        let figures: UnsafeMutablePointer<Figures>
        /// `SensorAnalyzer.powersOfTen`, out of reach of a global's lazy initialization check.
        let powers: UnsafeMutablePointer<Double>

        init(_ figures: [Figures]) {
            count = figures.count
            self.figures = .allocate(capacity: max(1, count))
            self.figures.initialize(from: figures, count: count)
            powers = .allocate(capacity: SensorAnalyzer.powersOfTen.count)
            powers.initialize(from: SensorAnalyzer.powersOfTen, count: SensorAnalyzer.powersOfTen.count)
        }

        deinit {
            figures.deinitialize(count: count)
            figures.deallocate()
            powers.deinitialize(count: SensorAnalyzer.powersOfTen.count)
            powers.deallocate()
        }
    }

    /// The thresholds' patterns, compiled. Boxed: a `Regex` comes from a resilient module, its size
    /// known only at run time, and held in the engine it would make each access to the engine's
    /// fields look up their offsets in its type metadata.
    private final class Patterns {
        let constantByNature: Regex<AnyRegexOutput>
        let ranges: [(range: SensorQCThresholds.PlausibleRange, pattern: Regex<AnyRegexOutput>)]

        init(_ thresholds: SensorQCThresholds) {
            constantByNature = Self.compile(thresholds.constantByNature)
            ranges = thresholds.ranges.map { ($0, Self.compile($0.namePattern)) }
        }

        /// The patterns are constants of the code, not read from any file: a malformed one is a bug.
        static func compile(_ pattern: String) -> Regex<AnyRegexOutput> {
            guard let regex = try? Regex(pattern) else { preconditionFailure("SensorQCThresholds: bad pattern \(pattern)") }
            return regex.ignoresCase()
        }
    }

    /// One of the first rows, held until the columns are typed.
    private struct HeldRow {
        let line: Int64
        let bytes: [UInt8]
        let ends: [Int]
        let unreadable: Bool
    }

    /// The plotted columns' means over runs of `rows` good rows: as the audio envelope, runs start
    /// 1 row long and neighbours merge in pairs whenever 2 × points are finished, so that a file of
    /// any length ends with points to 2 × points equal runs (and a shorter last one). The
    /// unfinished run's sums are the columns' own (`Figures.plotSum`).
    private struct Plot {
        var columns: [Int] = []
        var sums: [[Double]] = []
        var counts: [[Int32]] = []
        var rows = 1
        var fill = 0

        mutating func start(count n: Int) {
            (sums, counts) = (Array(repeating: [], count: n), Array(repeating: [], count: n))
        }

        /// After a good row's values are summed.
        mutating func row(_ f: UnsafeMutablePointer<Figures>, points: Int) {
            guard !columns.isEmpty else { return }
            fill += 1
            guard fill == rows else { return }
            close(f)
            guard sums[0].count >= 2 * max(1, points) else { return }
            for k in columns.indices {
                sums[k] = Swift.stride(from: 0, to: sums[k].count - 1, by: 2).map { sums[k][$0] + sums[k][$0 + 1] }
                counts[k] = Swift.stride(from: 0, to: counts[k].count - 1, by: 2).map { counts[k][$0] + counts[k][$0 + 1] }
            }
            rows *= 2
        }

        mutating func close(_ f: UnsafeMutablePointer<Figures>) {
            for (k, c) in columns.enumerated() {
                sums[k].append(f[c].plotSum)
                counts[k].append(f[c].plotCount)
                (f[c].plotSum, f[c].plotCount) = (0, 0)
            }
            fill = 0
        }

        mutating func points(_ f: UnsafeMutablePointer<Figures>) -> [[Float?]] {
            if fill > 0 { close(f) }
            return columns.indices.map { k in zip(sums[k], counts[k]).map { $1 > 0 ? Float($0 / Double($1)) : nil } }
        }
    }

    private struct Engine {
        /// The first rows vote on each column's type (numeric or text), so that a torn first row
        /// (a power cut mid-write) cannot make a numeric column text and hide every later defect.
        static let typingRows = 100
        /// The median interval is the exact median of the first 4096 positive intervals: a tag's
        /// sensor logs at one fixed period per file (the firmware's *_SAMPLING_PERIOD_US), so its
        /// start tells its period, and a median stays put if up to half of those intervals are
        /// gaps or jitter. Gaps among them are judged once the median is known. A running estimate
        /// over the whole file would need every gap candidate held until the end; this needs 96 KiB.
        static let medianSample = 4096
        static let maxRowBytes = 1 << 16
        static let maxFields = 4096
        static let keptBadRows = 5
        static let keptGaps = 20
        static let comma = UInt8(ascii: ","), newline = UInt8(ascii: "\n"), carriageReturn = UInt8(ascii: "\r")
        static let quote = UInt8(ascii: "\""), space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")
        static let minus = UInt8(ascii: "-"), dot = UInt8(ascii: "."), zero = UInt8(ascii: "0")

        let name: String
        let thresholds: SensorQCThresholds
        let patterns: Patterns

        // The tokenizer.
        var head: [UInt8] = []
        var headChecked = false
        var state = State.fieldStart
        var rowBytes: [UInt8] = []
        var fieldEnds: [Int] = []
        var unreadable = false
        var line: Int64 = 1
        var recordLine: Int64 = 1

        // The columns.
        var header: [String]?
        var headerPresent = false
        var columns: [Column] = []
        var table = Table([])
        /// Columns still undecided (numeric or text) once typed.
        var undecided = 0
        var held: [HeldRow]? = []

        var rows: Int64 = 0
        var badRows: Int64 = 0
        var badByReason = [Int64](repeating: 0, count: BadReason.allCases.count)
        var firstBadRows: [Int64] = []

        // The timestamp.
        var timestamp: Int?
        var unitHint: String?
        var unit: String?
        var unitDecided = false
        var scale = 1.0
        var previous: Double?
        var nonMonotonic: Int64 = 0
        var firstNonMonotonic: Int64?
        var pending: [(line: Int64, from: Double, to: Double)] = []
        var median: Double?
        var gaps: [SensorQC.Gap] = []
        var gapCount: Int64 = 0
        var plot = Plot()

        init(name: String, thresholds: SensorQCThresholds) {
            self.name = name
            self.thresholds = thresholds
            patterns = Patterns(thresholds)
        }

        // MARK: Tokenizing

        mutating func feed(_ bytes: UnsafeRawBufferPointer) {
            var rest = bytes
            if !headChecked {
                // A UTF-8 byte-order mark may be split across chunks: hold the first 3 bytes.
                let take = min(3 - head.count, rest.count)
                head.append(contentsOf: rest[rest.startIndex..<rest.startIndex + take])
                rest = UnsafeRawBufferPointer(rebasing: rest[(rest.startIndex + take)...])
                if head.count == 3 { checkHead() }
            }
            consume(rest.assumingMemoryBound(to: UInt8.self))
        }

        mutating func checkHead() {
            headChecked = true
            if head != [0xEF, 0xBB, 0xBF] {
                let bytes = head
                bytes.withUnsafeBufferPointer { consume($0) }
            }
        }

        /// Once the columns are typed, the rows that lie whole in the chunk are read in place
        /// (`readRows`); the tokenizer takes the others, one record at a time.
        mutating func consume(_ p: UnsafeBufferPointer<UInt8>) {
            guard let base = p.baseAddress else { return }
            var i = 0
            while i < p.count {
                if held == nil && state == .fieldStart && rowBytes.isEmpty && fieldEnds.isEmpty && !unreadable {
                    i = readRows(base, from: i, count: p.count)
                    if i == p.count { return }
                }
                i = tokenize(base, from: i, count: p.count)
            }
        }

        /// Copies a record's fields into `rowBytes` until it ends (returns the index past its
        /// newline) or the chunk does. Runs of ordinary bytes are appended at once: only
        /// separators, quotes and line ends are looked at one by one.
        mutating func tokenize(_ p: UnsafePointer<UInt8>, from start: Int, count: Int) -> Int {
            let (comma, newline, carriageReturn, quote) = (Self.comma, Self.newline, Self.carriageReturn, Self.quote)
            var i = start
            while i < count {
                var j = i
                switch state {
                case .quoted:
                    while j < count && p[j] != quote {
                        if p[j] == newline { line += 1 }
                        j += 1
                    }
                    append(p, i..<j)
                    if j < count {
                        state = .quoteInQuoted
                        j += 1
                    }
                case .quoteInQuoted where p[i] == quote:
                    // "" inside quotes is one ".
                    append(quote)
                    state = .quoted
                    j += 1
                case .quoteInQuoted, .fieldStart, .unquoted:
                    if state == .quoteInQuoted { state = .unquoted }
                    while j < count, case let b = p[j], b != comma && b != newline && b != carriageReturn && b != quote { j += 1 }
                    if j > i {
                        append(p, i..<j)
                        state = .unquoted
                    }
                    if j < count {
                        let b = p[j]
                        separator(b)
                        j += 1
                        if b == newline { return j }
                    }
                }
                i = j
            }
            return i
        }

        /// A separator, quote or CR outside quotes. The CR is dropped, whichever chunk its LF
        /// comes in; a quote opens a quoted field only at its start.
        mutating func separator(_ byte: UInt8) {
            switch byte {
            case Self.comma: endField()
            case Self.newline:
                endField()
                endRecord()
                line += 1
                recordLine = line
            case Self.quote where state == .fieldStart: state = .quoted
            case Self.quote: append(byte)
            default: break
            }
        }

        mutating func append(_ p: UnsafePointer<UInt8>, _ span: Range<Int>) {
            let room = Self.maxRowBytes - rowBytes.count
            if span.count > room { unreadable = true }
            rowBytes.append(contentsOf: UnsafeBufferPointer(start: p + span.lowerBound, count: min(span.count, max(0, room))))
        }

        mutating func append(_ byte: UInt8) {
            if rowBytes.count < Self.maxRowBytes { rowBytes.append(byte) } else { unreadable = true }
        }

        mutating func endField() {
            if fieldEnds.count < Self.maxFields { fieldEnds.append(rowBytes.count) } else { unreadable = true }
            state = .fieldStart
        }

        mutating func endRecord() {
            defer {
                rowBytes.removeAll(keepingCapacity: true)
                fieldEnds.removeAll(keepingCapacity: true)
                unreadable = false
            }
            let blank = fieldEnds.count == 1 && !unreadable && rowBytes.allSatisfy { $0 == Self.space || $0 == Self.tab }
            if blank { return }
            if header == nil && !readHeader() { return }
            rows += 1
            if held != nil {
                held!.append(HeldRow(line: recordLine, bytes: rowBytes, ends: fieldEnds, unreadable: unreadable))
                if held!.count == Self.typingRows { typeColumns() }
                return
            }
            let (bytes, ends) = (rowBytes, fieldEnds)
            bytes.withUnsafeBufferPointer { check($0, ends, line: recordLine, unreadable: unreadable) }
        }

        // MARK: Reading rows in place

        /// Checks the rows from `start` to the chunk's last newline without copying them, as long
        /// as they are plain: no quote, no CR but before the LF, the header's number of fields, no
        /// bad value and not over `maxRowBytes`, which `tokenize` and `check` would take exactly
        /// so. Nearly every row of a tag's file is. Returns where it stopped: at the first row left
        /// to the tokenizer, or past the last newline.
        mutating func readRows(_ p: UnsafePointer<UInt8>, from start: Int, count: Int) -> Int {
            // Every scan in `read` stops at a newline: the last one spares them the chunk's end.
            var last = count - 1
            while last >= start && p[last] != Self.newline { last -= 1 }
            let (f, n, powers) = (table.figures, table.count, table.powers)
            let end = p + last + 1
            var row = p + start
            while row < end {
                guard let fieldsEnd = Self.read(row, f, n, powers), fieldsEnd - row <= Self.maxRowBytes else { break }
                if undecided > 0 {
                    for c in 0..<n where f[c].kind == .undecided && f[c].vote != .undecided {
                        f[c].kind = f[c].vote
                        undecided -= 1
                    }
                }
                rows += 1
                commit(line: recordLine)
                line += 1
                recordLine = line
                row = fieldsEnd + (fieldsEnd.pointee == Self.carriageReturn ? 2 : 1)
            }
            return row - p
        }

        /// Reads a row's `n` fields into the figures' `value`, `present` and (of the undecided
        /// columns) `vote`; returns where its fields end (at its CR or LF), or nil when the row is
        /// no plain row: then nothing else is changed. Numbers of 1 to 18 digits, of the form
        /// -ddd.ddd amid spaces, are read here as `number` reads them (the digits divided by an
        /// exact power of ten); any other field is handed to `number`.
        static func read(
            _ row: UnsafePointer<UInt8>, _ f: UnsafeMutablePointer<Figures>, _ n: Int, _ powers: UnsafePointer<Double>
        ) -> UnsafePointer<UInt8>? {
            let (comma, newline, carriageReturn, space, tab) = (Self.comma, Self.newline, Self.carriageReturn, Self.space, Self.tab)
            var q = row
            for c in 0..<n {
                let column = f + c
                let kind = column.pointee.kind
                if kind == .text {
                    q = fieldEnd(q)
                    column.pointee.present = false
                } else {
                    let start = q
                    var b = q.pointee
                    while b == space || b == tab { (q, b) = (q + 1, q[1]) }
                    let negative = b == Self.minus
                    if negative { (q, b) = (q + 1, q[1]) }
                    var mantissa: UInt64 = 0
                    let digitsStart = q
                    while case let d = b &- Self.zero, d < 10 {
                        mantissa = mantissa &* 10 &+ UInt64(d)
                        (q, b) = (q + 1, q[1])
                    }
                    var digits = q - digitsStart
                    var fraction = 0
                    if b == Self.dot {
                        (q, b) = (q + 1, q[1])
                        let fractionStart = q
                        while case let d = b &- Self.zero, d < 10 {
                            mantissa = mantissa &* 10 &+ UInt64(d)
                            (q, b) = (q + 1, q[1])
                        }
                        fraction = q - fractionStart
                        digits += fraction
                    }
                    while b == space || b == tab { (q, b) = (q + 1, q[1]) }
                    var vote = Kind.numeric
                    if digits > 0 && digits <= 18 && (b == comma || b == newline || b == carriageReturn) {
                        // Below 10^18, `number`'s mantissa takes every digit and its exponent is
                        // -fraction. Converted as signed (one instruction), the same below 2^63.
                        let m = Double(Int64(bitPattern: mantissa))
                        let v = fraction > 0 ? m / powers[fraction] : m
                        column.pointee.value = negative ? -v : v
                        column.pointee.present = true
                    } else {
                        q = fieldEnd(start)
                        let field = UnsafeBufferPointer(start: start, count: q - start)
                        if let v = SensorAnalyzer.number(field, 0..<field.count) {
                            column.pointee.value = v
                            column.pointee.present = true
                        } else {
                            column.pointee.present = false
                            if isBlank(field, 0..<field.count) {
                                vote = .undecided
                            } else if kind == .undecided {
                                vote = .text
                            } else {
                                return nil  // A bad row: the tokenizer's, to count.
                            }
                        }
                    }
                    if kind == .undecided { column.pointee.vote = vote }
                }
                switch q.pointee {
                case comma where c < n - 1: q += 1
                case newline where c == n - 1: break
                case carriageReturn where c == n - 1 && q[1] == newline: break
                default: return nil
                }
            }
            // A lone field that is no number may be a blank line, which is no row.
            return n > 1 || (n == 1 && f.pointee.present) ? q : nil
        }

        /// The first comma, CR, LF or quote from `q`.
        static func fieldEnd(_ q: UnsafePointer<UInt8>) -> UnsafePointer<UInt8> {
            var q = q
            while case let b = q.pointee, b != comma && b != newline && b != carriageReturn && b != quote { q += 1 }
            return q
        }

        // MARK: Columns

        /// Takes the first line as the header, unless every field in it is a number: then the
        /// file has none, and the line is data (returns true).
        mutating func readHeader() -> Bool {
            let fields = rowBytes.withUnsafeBufferPointer { p in
                Self.spans(fieldEnds).map { (text: String(decoding: p[$0], as: UTF8.self), number: SensorAnalyzer.number(p, $0)) }
            }
            headerPresent = !fields.allSatisfy { $0.number != nil }
            let names =
                headerPresent
                ? fields.enumerated().map { i, f in
                    let name = f.text.trimmingCharacters(in: .whitespaces)
                    return name.isEmpty ? "column \(i + 1)" : name
                }
                : fields.indices.map { "column \($0 + 1)" }
            header = headerPresent ? names : []
            columns = names.map { name in
                let (normalized, unit) = SensorAnalyzer.split(header: name)
                let range = patterns.ranges.lazy.compactMap { r -> (Double, Double, String)? in
                    guard let u = unit, let perUnit = r.range.units[SensorAnalyzer.unitKey(u)], normalized.contains(r.pattern) else {
                        return nil
                    }
                    return (r.range.min * perUnit, r.range.max * perUnit, u)
                }.first
                return Column(name: name, exempt: normalized.contains(patterns.constantByNature), range: range)
            }
            table = Table(
                columns.map { column in
                    Figures(ranged: column.range != nil, low: column.range?.min ?? 0, high: column.range?.max ?? 0)
                })
            return !headerPresent
        }

        /// Votes each column numeric or text over the held rows, picks the timestamp column, then
        /// checks the held rows.
        mutating func typeColumns() {
            guard let heldRows = held else { return }
            held = nil
            let f = table.figures
            var numeric = [Int](repeating: 0, count: columns.count)
            var text = numeric
            var firstValue = [Double?](repeating: nil, count: columns.count)
            for row in heldRows where !row.unreadable && row.ends.count == columns.count {
                row.bytes.withUnsafeBufferPointer { p in
                    for (c, span) in Self.spans(row.ends).enumerated() {
                        if let v = SensorAnalyzer.number(p, span) {
                            numeric[c] += 1
                            firstValue[c] = firstValue[c] ?? v
                        } else if !Self.isBlank(p, span) {
                            text[c] += 1
                        }
                    }
                }
            }
            for c in columns.indices where numeric[c] + text[c] > 0 {
                f[c].kind = numeric[c] > text[c] ? .numeric : .text
            }
            undecided = columns.indices.filter { f[$0].kind == .undecided }.count
            chooseTimestamp(firstValue: firstValue.first ?? nil)
            plot.columns = Array(
                columns.indices.filter { f[$0].kind == .numeric && $0 != timestamp && !columns[$0].exempt }
                    .prefix(thresholds.plottedColumns))
            for c in plot.columns { f[c].plotted = true }
            plot.start(count: plot.columns.count)
            for row in heldRows {
                row.bytes.withUnsafeBufferPointer { check($0, row.ends, line: row.line, unreadable: row.unreadable) }
            }
        }

        /// The first column named "timestamp", else "time" or "epoch" (not text); else, the first
        /// column when its values are epoch times.
        mutating func chooseTimestamp(firstValue: Double?) {
            let f = table.figures
            let words = columns.map { SensorAnalyzer.split(header: $0.name) }
            for wanted in [["timestamp"], ["time", "epoch"]] {
                let found = columns.indices.first { c in
                    f[c].kind != .text && words[c].name.split(separator: " ").contains { wanted.contains(String($0)) }
                }
                if let found {
                    timestamp = found
                    // "Timestamp [us]", or "time_us".
                    let (name, unit) = words[found]
                    unitHint = SensorAnalyzer.timeUnit(unit.map(SensorAnalyzer.unitKey) ?? String(name.split(separator: " ").last ?? ""))
                    return
                }
            }
            if let firstValue, !columns.isEmpty, f[0].kind == .numeric, SensorAnalyzer.epochUnit(firstValue) != nil { timestamp = 0 }
        }

        // MARK: Checking a row

        mutating func check(_ p: UnsafeBufferPointer<UInt8>, _ ends: [Int], line: Int64, unreadable: Bool) {
            guard !unreadable else { return bad(line, .unreadable) }
            guard ends.count == columns.count else { return bad(line, .fieldCount) }
            let f = table.figures
            var start = 0
            for c in ends.indices {
                let span = start..<ends[c]
                start = ends[c]
                f[c].present = false
                if f[c].kind == .text { continue }
                if let v = SensorAnalyzer.number(p, span) {
                    f[c].value = v
                    f[c].present = true
                    if f[c].kind == .undecided {
                        f[c].kind = .numeric
                        undecided -= 1
                    }
                } else if Self.isBlank(p, span) {
                    continue  // A missing value (a GPS without a fix), not a wrong one.
                } else if f[c].kind == .undecided {
                    f[c].kind = .text
                    undecided -= 1
                } else {
                    return bad(line, .nonNumeric)
                }
            }
            commit(line: line)
        }

        /// The checks of a good row, whose values are in the figures.
        mutating func commit(line: Int64) {
            let f = table.figures
            let t = timestamp ?? -1
            if t >= 0 && f[t].present { checkTime(f[t].value, line: line) }
            for c in 0..<table.count where f[c].present && c != t { f[c].add() }
            plot.row(f, points: thresholds.plotPoints)
        }

        mutating func bad(_ line: Int64, _ reason: BadReason) {
            badRows += 1
            badByReason[reason.rawValue] += 1
            if firstBadRows.count < Self.keptBadRows { firstBadRows.append(line) }
        }

        mutating func checkTime(_ t: Double, line: Int64) {
            if !unitDecided {
                unitDecided = true
                unit = SensorAnalyzer.epochUnit(t) ?? unitHint
                scale = unit.map { ["s": 1, "ms": 1e-3, "us": 1e-6][$0]! } ?? 1
            }
            defer { self.previous = t }
            guard let previous else { return }
            if t < previous {
                nonMonotonic += 1
                firstNonMonotonic = firstNonMonotonic ?? line
            }
            guard t > previous else { return }
            if median == nil {
                pending.append((line, previous, t))
                if pending.count == Self.medianSample { settleMedian() }
            } else {
                checkGap(line: line, from: previous, to: t)
            }
        }

        mutating func settleMedian() {
            guard median == nil, !pending.isEmpty else { return }
            let sorted = pending.map { $0.to - $0.from }.sorted()
            let mid = sorted.count / 2
            median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
            for p in pending { checkGap(line: p.line, from: p.from, to: p.to) }
            pending = []
        }

        mutating func checkGap(line: Int64, from: Double, to: Double) {
            guard let median, to - from > thresholds.gapFactor * median else { return }
            gapCount += 1
            if gaps.count < Self.keptGaps {
                gaps.append(SensorQC.Gap(row: line, from: from * scale, to: to * scale, seconds: (to - from) * scale))
            }
        }

        // MARK: The result

        mutating func finish() -> SensorQC {
            if !headChecked { checkHead() }
            if state == .quoted { unreadable = true }
            if state != .fieldStart || !rowBytes.isEmpty || !fieldEnds.isEmpty {
                // The last line had no newline.
                endField()
                endRecord()
            }
            typeColumns()
            settleMedian()
            if !unitDecided { unit = unitHint }
            let f = table.figures
            let frozen = columns.indices.filter { c in
                c != timestamp && f[c].kind == .numeric && !columns[c].exempt && !f[c].changed && f[c].first != -1
                    && f[c].values >= thresholds.minRowsForFrozen
            }
            let outOfRange = columns.indices.filter { f[$0].outside > 0 }.map { c in
                SensorQC.RangeProblem(
                    column: columns[c].name, count: f[c].outside, min: f[c].lowest, max: f[c].highest,
                    plausibleMin: columns[c].range!.min, plausibleMax: columns[c].range!.max, unit: columns[c].range!.unit)
            }
            var qc = SensorQC(
                name: name, header: header ?? [], headerPresent: headerPresent, rows: rows, badRows: badRows,
                firstBadRows: firstBadRows, timestampColumn: timestamp.map { columns[$0].name }, timestampUnit: unit,
                nonMonotonic: nonMonotonic, firstNonMonotonicRow: firstNonMonotonic,
                medianIntervalSeconds: median.map { $0 * scale }, gaps: gaps, gapCount: gapCount, outOfRange: outOfRange,
                frozenColumns: frozen.map { columns[$0].name },
                series: zip(plot.columns, plot.points(f)).map { SensorQC.Series(column: columns[$0].name, points: $1) },
                problems: [])
            qc.problems = problems(qc, frozen: frozen)
            return qc
        }
        func problems(_ qc: SensorQC, frozen: [Int]) -> [QCProblem] {
            var out: [QCProblem] = []
            func say(_ kind: QCProblem.Kind, column: String? = nil, _ s: String) {
                out.append(QCProblem(.warn, kind, file: name, column: column, message: "\(name): \(s)"))
            }
            if header == nil {
                say(.empty, "empty file, not even a header")
                return out
            }
            if !qc.headerPresent { say(.noHeader, "no header line; the first line is data") }
            if qc.badRows > 0 {
                let why = zip(BadReason.allCases, badByReason).filter { $0.1 > 0 }.map { reason, n in
                    switch reason {
                    case .fieldCount: return "\(n) with the wrong number of fields"
                    case .nonNumeric: return "\(n) with a non-numeric value"
                    case .unreadable: return "\(n) unreadable"
                    }
                }
                let lines = qc.firstBadRows.map(String.init).joined(separator: ", ")
                say(
                    .badRows,
                    "\(Self.count(qc.badRows, "bad row")) (\(why.joined(separator: ", "))), first at "
                        + "\(qc.firstBadRows.count > 1 ? "lines" : "line") \(lines)")
            }
            if qc.timestampColumn == nil && qc.rows > qc.badRows { say(.noTimestamp, "no timestamp column; time checks skipped") }
            if let first = qc.firstNonMonotonicRow {
                say(
                    .timestampBackwards, column: qc.timestampColumn,
                    "timestamp goes backwards \(Self.count(qc.nonMonotonic, "time")), first at line \(first)")
            }
            let s = qc.timestampUnit == nil ? "" : " s"
            let median = SensorAnalyzer.format(qc.medianIntervalSeconds ?? 0)
            for gap in qc.gaps {
                say(
                    .timestampGap, column: qc.timestampColumn,
                    "timestamp jumps \(SensorAnalyzer.format(gap.seconds))\(s) at line \(gap.row) (median interval \(median)\(s))")
            }
            if qc.gapCount > Int64(qc.gaps.count) {
                say(.timestampGap, column: qc.timestampColumn, "and \(Self.count(qc.gapCount - Int64(qc.gaps.count), "more gap"))")
            }
            for r in qc.outOfRange {
                let range = "\(SensorAnalyzer.format(r.plausibleMin)) to \(SensorAnalyzer.format(r.plausibleMax)) \(r.unit)"
                say(
                    .outOfRange, column: r.column,
                    "column '\(r.column)' has \(Self.count(r.count, "value")) outside \(range) "
                        + "(from \(SensorAnalyzer.format(r.min)) to \(SensorAnalyzer.format(r.max)))")
            }
            for c in frozen {
                say(.frozenColumn, column: columns[c].name, "column '\(columns[c].name)' never changes (\(table.figures[c].values) rows)")
            }
            return out
        }

        /// The byte ranges of a row's fields, from their ends.
        static func spans(_ ends: [Int]) -> [Range<Int>] {
            zip([0] + ends.dropLast(), ends).map { $0..<$1 }
        }

        static func isBlank(_ p: UnsafeBufferPointer<UInt8>, _ span: Range<Int>) -> Bool {
            span.allSatisfy { p[$0] == space || p[$0] == tab }
        }

        static func count(_ n: Int64, _ noun: String) -> String {
            "\(n) \(noun)\(n == 1 ? "" : "s")"
        }
    }
}
