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

    private struct Column {
        let name: String
        var kind = Kind.undecided
        /// Frozen unless `changed`.
        var values: Int64 = 0
        var first = 0.0
        var changed = false
        let exempt: Bool
        /// The plausible range, in the column's unit.
        let range: (min: Double, max: Double, unit: String)?
        var outside: Int64 = 0
        var lowest = Double.infinity
        var highest = -Double.infinity
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
    /// any length ends with points to 2 × points equal runs (and a shorter last one).
    private struct Plot {
        var columns: [Int] = []
        var sums: [[Double]] = []
        var counts: [[Int32]] = []
        var sum: [Double] = []
        var count: [Int32] = []
        var rows = 1
        var fill = 0

        mutating func start(count n: Int) {
            (sums, counts, sum, count) = (
                Array(repeating: [], count: n), Array(repeating: [], count: n), Array(repeating: 0, count: n), Array(repeating: 0, count: n)
            )
        }

        mutating func add(_ values: [Double], _ present: [Bool], points: Int) {
            guard !columns.isEmpty else { return }
            for (k, c) in columns.enumerated() where present[c] {
                sum[k] += values[c]
                count[k] += 1
            }
            fill += 1
            guard fill == rows else { return }
            close()
            guard sums[0].count >= 2 * max(1, points) else { return }
            for k in columns.indices {
                sums[k] = Swift.stride(from: 0, to: sums[k].count - 1, by: 2).map { sums[k][$0] + sums[k][$0 + 1] }
                counts[k] = Swift.stride(from: 0, to: counts[k].count - 1, by: 2).map { counts[k][$0] + counts[k][$0 + 1] }
            }
            rows *= 2
        }

        mutating func close() {
            for k in columns.indices {
                sums[k].append(sum[k])
                counts[k].append(count[k])
                (sum[k], count[k]) = (0, 0)
            }
            fill = 0
        }

        mutating func points(_ points: Int) -> [[Float?]] {
            if fill > 0 { close() }
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

        let name: String
        let thresholds: SensorQCThresholds
        let constantByNature: Regex<AnyRegexOutput>
        let ranges: [(range: SensorQCThresholds.PlausibleRange, pattern: Regex<AnyRegexOutput>)]

        // The tokenizer.
        var head: [UInt8] = []
        var headChecked = false
        var state = State.fieldStart
        var rowBytes: [UInt8] = []
        var fieldEnds: [Int] = []
        var unreadable = false
        var line: Int64 = 1
        var recordLine: Int64 = 1

        // The columns and the row being checked.
        var header: [String]?
        var headerPresent = false
        var columns: [Column] = []
        var held: [HeldRow]? = []
        var values: [Double] = []
        var present: [Bool] = []

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
            constantByNature = Self.compile(thresholds.constantByNature)
            ranges = thresholds.ranges.map { ($0, Self.compile($0.namePattern)) }
        }

        /// The patterns are constants of the code, not read from any file: a malformed one is a bug.
        static func compile(_ pattern: String) -> Regex<AnyRegexOutput> {
            guard let regex = try? Regex(pattern) else { preconditionFailure("SensorQCThresholds: bad pattern \(pattern)") }
            return regex.ignoresCase()
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

        /// Runs of ordinary bytes are appended at once: only separators, quotes and line ends are
        /// looked at one by one.
        mutating func consume(_ p: UnsafeBufferPointer<UInt8>) {
            let (comma, newline, carriageReturn, quote) = (Self.comma, Self.newline, Self.carriageReturn, Self.quote)
            var i = 0
            while i < p.count {
                var j = i
                switch state {
                case .quoted:
                    while j < p.count && p[j] != quote {
                        if p[j] == newline { line += 1 }
                        j += 1
                    }
                    append(p, i..<j)
                    if j < p.count {
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
                    while j < p.count, case let b = p[j], b != comma && b != newline && b != carriageReturn && b != quote { j += 1 }
                    if j > i {
                        append(p, i..<j)
                        state = .unquoted
                    }
                    if j < p.count {
                        separator(p[j])
                        j += 1
                    }
                }
                i = j
            }
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

        mutating func append(_ p: UnsafeBufferPointer<UInt8>, _ span: Range<Int>) {
            let room = Self.maxRowBytes - rowBytes.count
            if span.count > room { unreadable = true }
            rowBytes.append(contentsOf: UnsafeBufferPointer(rebasing: p[span.prefix(max(0, room))]))
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
                let range = ranges.lazy.compactMap { r -> (Double, Double, String)? in
                    guard let u = unit, let perUnit = r.range.units[SensorAnalyzer.unitKey(u)], normalized.contains(r.pattern) else {
                        return nil
                    }
                    return (r.range.min * perUnit, r.range.max * perUnit, u)
                }.first
                return Column(name: name, exempt: normalized.contains(constantByNature), range: range)
            }
            values = Array(repeating: 0, count: names.count)
            present = Array(repeating: false, count: names.count)
            return !headerPresent
        }

        /// Votes each column numeric or text over the held rows, picks the timestamp column, then
        /// checks the held rows.
        mutating func typeColumns() {
            guard let heldRows = held else { return }
            held = nil
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
                columns[c].kind = numeric[c] > text[c] ? .numeric : .text
            }
            chooseTimestamp(firstValue: firstValue.first ?? nil)
            plot.columns = Array(
                columns.indices.filter { columns[$0].kind == .numeric && $0 != timestamp && !columns[$0].exempt }
                    .prefix(thresholds.plottedColumns))
            plot.start(count: plot.columns.count)
            for row in heldRows {
                row.bytes.withUnsafeBufferPointer { check($0, row.ends, line: row.line, unreadable: row.unreadable) }
            }
        }

        /// The first column named "timestamp", else "time" or "epoch" (not text); else, the first
        /// column when its values are epoch times.
        mutating func chooseTimestamp(firstValue: Double?) {
            let words = columns.map { SensorAnalyzer.split(header: $0.name) }
            for wanted in [["timestamp"], ["time", "epoch"]] {
                let found = columns.indices.first { c in
                    columns[c].kind != .text && words[c].name.split(separator: " ").contains { wanted.contains(String($0)) }
                }
                if let found {
                    timestamp = found
                    // "Timestamp [us]", or "time_us".
                    let (name, unit) = words[found]
                    unitHint = SensorAnalyzer.timeUnit(unit.map(SensorAnalyzer.unitKey) ?? String(name.split(separator: " ").last ?? ""))
                    return
                }
            }
            if let firstValue, columns.first?.kind == .numeric, SensorAnalyzer.epochUnit(firstValue) != nil { timestamp = 0 }
        }

        // MARK: Checking a row

        mutating func check(_ p: UnsafeBufferPointer<UInt8>, _ ends: [Int], line: Int64, unreadable: Bool) {
            guard !unreadable else { return bad(line, .unreadable) }
            guard ends.count == columns.count else { return bad(line, .fieldCount) }
            var start = 0
            for c in ends.indices {
                let span = start..<ends[c]
                start = ends[c]
                present[c] = false
                if columns[c].kind == .text { continue }
                if let v = SensorAnalyzer.number(p, span) {
                    values[c] = v
                    present[c] = true
                    if columns[c].kind == .undecided { columns[c].kind = .numeric }
                } else if Self.isBlank(p, span) {
                    continue  // A missing value (a GPS without a fix), not a wrong one.
                } else if columns[c].kind == .undecided {
                    columns[c].kind = .text
                } else {
                    return bad(line, .nonNumeric)
                }
            }
            if let t = timestamp, present[t] { checkTime(values[t], line: line) }
            plot.add(values, present, points: thresholds.plotPoints)
            for c in columns.indices where present[c] && c != timestamp {
                let v = values[c]
                columns[c].values += 1
                if columns[c].values == 1 {
                    columns[c].first = v
                } else if v != columns[c].first {
                    columns[c].changed = true
                }
                if let range = columns[c].range, v < range.min || v > range.max {
                    columns[c].outside += 1
                    columns[c].lowest = min(columns[c].lowest, v)
                    columns[c].highest = max(columns[c].highest, v)
                }
            }
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
            let frozen = columns.indices.filter { c in
                let col = columns[c]
                return c != timestamp && col.kind == .numeric && !col.exempt && !col.changed && col.first != -1
                    && col.values >= thresholds.minRowsForFrozen
            }
            let outOfRange = columns.filter { $0.outside > 0 }.map { col in
                SensorQC.RangeProblem(
                    column: col.name, count: col.outside, min: col.lowest, max: col.highest, plausibleMin: col.range!.min,
                    plausibleMax: col.range!.max, unit: col.range!.unit)
            }
            var qc = SensorQC(
                name: name, header: header ?? [], headerPresent: headerPresent, rows: rows, badRows: badRows,
                firstBadRows: firstBadRows, timestampColumn: timestamp.map { columns[$0].name }, timestampUnit: unit,
                nonMonotonic: nonMonotonic, firstNonMonotonicRow: firstNonMonotonic,
                medianIntervalSeconds: median.map { $0 * scale }, gaps: gaps, gapCount: gapCount, outOfRange: outOfRange,
                frozenColumns: frozen.map { columns[$0].name },
                series: zip(plot.columns, plot.points(thresholds.plotPoints)).map { SensorQC.Series(column: columns[$0].name, points: $1) },
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
                say(.frozenColumn, column: columns[c].name, "column '\(columns[c].name)' never changes (\(columns[c].values) rows)")
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
