import Foundation
import Testing

@testable import CetiKit

/// Sensor CSV QC (issue #16) on files written the way the tag's firmware writes them
/// (whale-tag-embedded, utils/logging.c: "Timestamp [us],RTC Count,Notes," then the sensor's
/// columns; "Restarted! | " in the first row's notes; -1 for a tag without an RTC).
@Suite struct SensorAnalyzerTests {
    static let name = "data_pressure_temperature.csv"
    static let header = "Timestamp [us],RTC Count,Notes,Pressure [bar],Water Temperature [C]"
    static let start: Int64 = 1_700_000_000_000_000

    /// One row of the pressure sensor at 10 Hz; `row` is 0-based (at line row + 2).
    struct Row {
        var t: Int64
        var notes = ""
        var pressure: String
        var temperature: String

        init(_ row: Int) {
            t = SensorAnalyzerTests.start + Int64(row) * 100_000
            notes = row == 0 ? "Restarted! | " : ""
            pressure = String(format: "%.3f", 1.0 + Double(row % 50) * 0.01)
            temperature = String(format: "%.3f", 18.0 + Double(row % 37) * 0.001)
        }

        var text: String { "\(t),-1,\(notes),\(pressure),\(temperature)\n" }
    }

    /// A pressure file of `rows` rows, each changed by `edit`.
    static func csv(rows: Int = 2000, _ edit: (Int, inout Row) -> Void = { _, _ in }) -> String {
        header + "\n"
            + (0..<rows).map { i in
                var row = Row(i)
                edit(i, &row)
                return row.text
            }.joined()
    }

    static func qc(_ text: String, name: String = name, chunk: Int = 1 << 20, thresholds: SensorQCThresholds = .init()) -> SensorQC {
        qc(Array(text.utf8), name: name, chunk: chunk, thresholds: thresholds)
    }

    static func qc(_ bytes: [UInt8], name: String = name, chunk: Int = 1 << 20, thresholds: SensorQCThresholds = .init()) -> SensorQC {
        let analyzer = SensorAnalyzer(name: name, thresholds: thresholds)
        bytes.withUnsafeBytes { all in
            for at in stride(from: 0, to: all.count, by: chunk) {
                analyzer.feed(UnsafeRawBufferPointer(rebasing: all[at..<min(at + chunk, all.count)]))
            }
        }
        return analyzer.finish()
    }

    static func close(_ a: Double?, _ b: Double, _ tolerance: Double = 1e-6) -> Bool {
        a.map { abs($0 - b) <= tolerance } ?? false
    }

    @Test func aCleanFileHasNoProblem() {
        let qc = Self.qc(Self.csv())
        #expect(qc.problems.isEmpty, "\(qc.problems)")
        #expect(qc.headerPresent && qc.header == Self.header.components(separatedBy: ","))
        #expect(qc.rows == 2000 && qc.badRows == 0 && qc.firstBadRows.isEmpty)
        #expect(qc.timestampColumn == "Timestamp [us]" && qc.timestampUnit == "us")
        #expect(Self.close(qc.medianIntervalSeconds, 0.1))
        #expect(qc.nonMonotonic == 0 && qc.gaps.isEmpty && qc.gapCount == 0)
        // "RTC Count" is -1 throughout: the firmware's "no RTC", not a frozen column.
        #expect(qc.outOfRange.isEmpty && qc.frozenColumns.isEmpty)
    }

    @Test func aFrozenColumnIsReportedAndNothingElse() {
        let qc = Self.qc(Self.csv { _, row in row.pressure = "1.013" })
        #expect(qc.frozenColumns == ["Pressure [bar]"])
        #expect(qc.problems.map(\.message) == ["data_pressure_temperature.csv: column 'Pressure [bar]' never changes (2000 rows)"])
        // Fewer rows than minRowsForFrozen: a slow sensor may simply not have changed.
        #expect(Self.qc(Self.csv(rows: 99) { _, row in row.pressure = "1.013" }).problems.isEmpty)
    }

    /// The acceptance file: a frozen column and a timestamp jump, and only those.
    @Test func aFrozenColumnAndATimestampJumpAreExactlyTheProblems() {
        let qc = Self.qc(
            Self.csv { i, row in
                row.temperature = "17.500"
                if i >= 1199 { row.t += 600_000_000 - 100_000 }
            })
        #expect(
            qc.problems.map(\.message) == [
                "data_pressure_temperature.csv: timestamp jumps 600 s at line 1201 (median interval 0.1 s)",
                "data_pressure_temperature.csv: column 'Water Temperature [C]' never changes (2000 rows)",
            ])
    }

    @Test func aTimestampJumpOf600SecondsIsOneGapAtItsRow() {
        let qc = Self.qc(Self.csv { i, row in if i >= 1199 { row.t += 600_000_000 - 100_000 } })
        #expect(qc.gapCount == 1 && qc.gaps.count == 1)
        let gap = qc.gaps[0]
        // Data row 1199 is line 1201 (the header is line 1).
        #expect(gap.row == 1201)
        #expect(Self.close(gap.seconds, 600))
        #expect(Self.close(gap.from, Double(Row(1198).t) / 1e6) && Self.close(gap.to, Double(Row(1198).t) / 1e6 + 600))
        #expect(qc.nonMonotonic == 0 && qc.frozenColumns.isEmpty && qc.problems.count == 1)
    }

    /// Past the 4096 intervals the median is taken from, gaps are judged as rows come.
    @Test func gapsAfterTheMedianSampleAndBeyondTheTwentyKept() {
        // One gap among the first 4096 intervals, then one every 30 rows from data row 4999.
        let qc = Self.qc(
            Self.csv(rows: 6000) { i, row in
                if i >= 1000 { row.t += 5_000_000 }
                if i >= 4999 { row.t += Int64((i - 4999) / 30 + 1) * 5_000_000 }
            })
        #expect(qc.gapCount == 35 && qc.gaps.count == 20)
        #expect(qc.gaps.prefix(3).map(\.row) == [1002, 5001, 5031])
        #expect(qc.gaps.allSatisfy { Self.close($0.seconds, 5.1) })
        #expect(qc.problems.last?.message == "data_pressure_temperature.csv: and 15 more gaps")
        #expect(qc.problems.count == 21)
    }

    @Test func aClockSteppingBackIsCountedOnce() {
        let qc = Self.qc(Self.csv { i, row in if i >= 500 { row.t -= 5_000_000 } })
        #expect(qc.nonMonotonic == 1 && qc.firstNonMonotonicRow == 502)
        #expect(qc.problems.map(\.message) == ["data_pressure_temperature.csv: timestamp goes backwards 1 time, first at line 502"])
    }

    @Test func valuesOutsidePlausibleRangesAreCountedWithTheirExtremes() {
        let hot = [100: "60.0", 101: "99.0", 102: "75.5", 103: "45.001", 104: "-5.5"]
        let qc = Self.qc(
            Self.csv { i, row in
                if let t = hot[i] { row.temperature = t }
                // The firmware's reading with no pressure sensor connected.
                if i == 700 { row.pressure = "-228.630" }
            })
        #expect(
            qc.outOfRange == [
                SensorQC.RangeProblem(
                    column: "Pressure [bar]", count: 1, min: -228.63, max: -228.63, plausibleMin: -1, plausibleMax: 200, unit: "bar"),
                SensorQC.RangeProblem(
                    column: "Water Temperature [C]", count: 5, min: -5.5, max: 99, plausibleMin: -5, plausibleMax: 45, unit: "C"),
            ])
        #expect(
            qc.problems.map(\.message) == [
                "data_pressure_temperature.csv: column 'Pressure [bar]' has 1 value outside -1 to 200 bar (from -228.6 to -228.6)",
                "data_pressure_temperature.csv: column 'Water Temperature [C]' has 5 values outside -5 to 45 C (from -5.5 to 99)",
            ])
    }

    @Test func rangesFollowTheUnitAndOnlyApplyWithOne() {
        let text = """
            Timestamp [ms],Pressure [mbar],Battery V1 [V],Battery Voltage [V],Board Temperature [C],PressureTemp CPU
            1700000000000,1013.2,3.91,7.8,61,250
            1700000000100,250000,4.6,21,62,250
            1700000000200,1013.3,3.90,7.7,63,250

            """
        let qc = Self.qc(text, name: "x.csv")
        #expect(qc.timestampUnit == "ms" && Self.close(qc.medianIntervalSeconds, 0.1))
        // mbar converted; one cell over 4.5 V, the pack over 20 V; a 61 °C board is no water
        // temperature, and the pressure thread's CPU no pressure.
        #expect(
            qc.outOfRange.map { "\($0.column) \($0.count) \(Self.format($0.plausibleMin))..\(Self.format($0.plausibleMax)) \($0.unit)" }
                == [
                    "Pressure [mbar] 1 -1000..200000 mbar", "Battery V1 [V] 1 2.5..4.5 V", "Battery Voltage [V] 1 0..20 V",
                ])
    }

    static func format(_ v: Double) -> String { SensorAnalyzer.format(v) }

    @Test func badRowsAreCountedWithTheirLinesAndLeftOutOfTheOtherChecks() {
        let qc = Self.qc(
            Self.csv { i, row in
                if i == 10 { row.notes = "\(row.notes),extra" }
                if i == 20 { row.pressure = "abc" }
                if i == 30 { row.temperature = "1.2.3" }
            })
        #expect(qc.rows == 2000 && qc.badRows == 3 && qc.firstBadRows == [12, 22, 32])
        #expect(
            qc.problems.map(\.message) == [
                "data_pressure_temperature.csv: 3 bad rows (1 with the wrong number of fields, 2 with a non-numeric value), first at lines 12, 22, 32"
            ])
        // Only the first 5 lines are kept.
        let many = Self.qc(Self.csv { i, row in if i % 100 == 7 { row.pressure = "x" } })
        #expect(many.badRows == 20 && many.firstBadRows == [9, 109, 209, 309, 409])
    }

    @Test func theTimestampUnitComesFromTheMagnitude() {
        let us = Self.qc(Self.csv())
        #expect(us.timestampUnit == "us" && Self.close(us.medianIntervalSeconds, 0.1))
        // As the integration tests' tags write them: epoch ms in the first column, no header.
        let ms = (0..<500).map { "\(1_700_000_000_000 + $0 * 10),0.\($0 % 97),\($0 % 4096)\n" }.joined()
        let qc = Self.qc(ms, name: "data_imu_acc_01.csv")
        #expect(!qc.headerPresent && qc.header.isEmpty && qc.rows == 500)
        #expect(qc.timestampColumn == "column 1" && qc.timestampUnit == "ms" && Self.close(qc.medianIntervalSeconds, 0.01))
        #expect(qc.problems.map(\.message) == ["data_imu_acc_01.csv: no header line; the first line is data"])
        let s = "time,value\n" + (0..<10).map { "\(1_700_000_000 + $0 * 60),\($0)\n" }.joined()
        #expect(Self.qc(s).timestampUnit == "s" && Self.close(Self.qc(s).medianIntervalSeconds, 60))
        // A clock since boot: the unit from the header.
        let boot = "Timestamp [us],Value\n" + (0..<10).map { "\(5_000_000 + $0 * 1000),\($0)\n" }.joined()
        #expect(Self.qc(boot).timestampUnit == "us" && Self.close(Self.qc(boot).medianIntervalSeconds, 0.001))
    }

    /// A defective file with a BOM, CRLF, quoted fields and multi-byte characters: every
    /// chunking gives the same result, chunk boundaries falling inside all of them.
    @Test func chunksCutAnywhereGiveTheSameResult() {
        let text =
            "\u{FEFF}"
            + Self.csv(rows: 1500) { i, row in
                if i == 3 { row.notes = "\"Température, 3 °C \"\"ok\"\"\"" }
                if i == 40 { row.pressure = "n/a" }
                if i >= 900 { row.t += 60_000_000 }
                row.temperature = "20.000"
            }.replacingOccurrences(of: "\n", with: "\r\n")
        let whole = Self.qc(text)
        #expect(whole.badRows == 1 && whole.gapCount == 1 && whole.frozenColumns == ["Water Temperature [C]"])
        #expect(whole.header.first == "Timestamp [us]")
        for chunk in [1, 2, 3, 7, 4096] {
            #expect(Self.qc(text, chunk: chunk) == whole, "chunks of \(chunk)")
        }
    }

    @Test func crlfLinesReadAsLfLines() {
        let lf = Self.csv()
        let crlf = Self.qc(lf.replacingOccurrences(of: "\n", with: "\r\n"))
        #expect(crlf == Self.qc(lf) && crlf.problems.isEmpty)
    }

    @Test func quotedFieldsHoldCommasQuotesAndNewlines() {
        let qc = Self.qc(
            Self.csv(rows: 200) { i, row in
                if i == 5 { row.notes = "\"depth, 3 m; \"\"surfacing\"\"\"" }
                if i == 6 { row.notes = "\"two\nlines\"" }
                if i == 50 { row.pressure = "bad" }
            })
        #expect(qc.rows == 200 && qc.badRows == 1)
        // The quoted newline makes data row 50 line 53.
        #expect(qc.firstBadRows == [53])
        // A quote never closed swallows the rest of the file: one unreadable row.
        let open = Self.qc(Self.header + "\n" + Row(0).text + "1700000000100000,-1,\"oops,1.0,18.0\n" + Row(2).text)
        #expect(open.rows == 2 && open.badRows == 1 && open.firstBadRows == [3])
        #expect(open.problems.contains { $0.message.contains("1 unreadable") })
    }

    @Test func blankLinesAndAMissingLastNewlineChangeNothing() {
        let clean = Self.qc(Self.csv())
        var text = Self.csv()
        text.removeLast()
        #expect(Self.qc(text) == clean)
        let blanks = Self.csv().replacingOccurrences(of: "\n1700000000100000,", with: "\n\n  \n\r\n1700000000100000,")
        let qc = Self.qc(blanks)
        #expect(qc.rows == 2000 && qc.problems.isEmpty)
    }

    @Test func emptyAndHeaderOnlyFiles() {
        for text in ["", "\u{FEFF}", "\n\r\n"] {
            let qc = Self.qc(text)
            #expect(!qc.headerPresent && qc.rows == 0)
            #expect(qc.problems.map(\.message) == ["data_pressure_temperature.csv: empty file, not even a header"])
        }
        for text in [Self.header, Self.header + "\n", Self.header + "\r\n"] {
            let qc = Self.qc(text)
            #expect(qc.headerPresent && qc.rows == 0 && qc.problems.isEmpty)
            #expect(qc.header.count == 5 && qc.timestampColumn == "Timestamp [us]" && qc.timestampUnit == "us")
        }
    }

    /// The system monitor's columns that never change by nature: the threads' CPU assignments
    /// (-1 for a thread not started), and an absent RTC.
    @Test func columnsConstantByNatureAreNotFrozen() {
        let header = "Timestamp [us],RTC Count,Notes,CPU all [%],Audio SPI CPU,FSM CPU,SysMonitor CPU,RAM Free [B]"
        let text =
            header + "\n"
            + (0..<300).map { "\(Self.start + Int64($0) * 5_000_000),-1,,\($0 % 13).5,-1,0,2,\(201_695_232 - $0 * 4096)\n" }.joined()
        let qc = Self.qc(text, name: "data_systemMonitor.csv")
        #expect(qc.problems.isEmpty && Self.close(qc.medianIntervalSeconds, 5))
        // The same value in a measurement is frozen.
        let stuck = header + "\n" + (0..<300).map { "\(Self.start + Int64($0) * 5_000_000),-1,,1.5,-1,0,2,201695232\n" }.joined()
        #expect(Self.qc(stuck, name: "data_systemMonitor.csv").frozenColumns == ["RAM Free [B]"])
    }

    /// The STM32 firmware's header puts a space after each comma.
    @Test func headerNamesAreTrimmed() {
        let text =
            "Timestamp [us], Notes, Pressure [bar], Temperature [C]\n"
            + (0..<10).map { "\(Self.start + Int64($0) * 1_000_000), , \(1 + $0).5, \($0 == 4 ? 50 : 12)\n" }.joined()
        let qc = Self.qc(text, name: "data_pressure.csv")
        #expect(qc.header == ["Timestamp [us]", "Notes", "Pressure [bar]", "Temperature [C]"])
        #expect(qc.badRows == 0 && qc.outOfRange.map(\.column) == ["Temperature [C]"])
    }

    @Test func aFileOnDiskIsStreamedThroughTheSameChecks() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-sensor-\(UUID()).csv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Over 1 MiB, so that it takes more than one read.
        let text = Self.csv(rows: 30_000) { i, row in if i >= 20_000 { row.t += 60_000_000 } }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let qc = try SensorAnalyzer.analyze(path: path, name: Self.name)
        #expect(qc == Self.qc(text) && qc.gapCount == 1 && qc.rows == 30_000)
        #expect(throws: FileIOError.self) { try SensorAnalyzer.analyze(path: path + ".missing", name: "x") }
    }

    /// 2 million rows of a 1 kHz ECG, made and fed 64 KiB at a time: nothing is kept per row.
    @Test func twoMillionRowsStreamThrough() {
        let analyzer = SensorAnalyzer(name: "data_ecg_00.csv")
        var chunk: [UInt8] = []
        chunk.reserveCapacity(1 << 16 + 256)
        func flush() {
            chunk.withUnsafeBytes { analyzer.feed($0) }
            chunk.removeAll(keepingCapacity: true)
        }
        chunk.append(contentsOf: "Timestamp [us],RTC Count,Notes,Sample Index,ECG,Leads-Off-P,Leads-Off-N\n".utf8)
        let rows = 2_000_000
        for i in 0..<rows {
            let t = Self.start + Int64(i) * 1000 + (i >= 1_500_000 ? 10_000_000 : 0)
            chunk.append(contentsOf: "\(t),-1,,\(i),\((i &* 7919) % 65536 - 32768),0,0\n".utf8)
            if chunk.count >= 1 << 16 { flush() }
        }
        flush()
        let qc = analyzer.finish()
        #expect(qc.rows == Int64(rows) && qc.badRows == 0 && qc.nonMonotonic == 0)
        #expect(Self.close(qc.medianIntervalSeconds, 0.001))
        #expect(qc.gapCount == 1 && qc.gaps.first?.row == 1_500_002 && Self.close(qc.gaps.first?.seconds, 10.001))
        #expect(qc.frozenColumns.isEmpty && qc.problems.count == 1)
    }

    @Test func numbersAreReadAsTheFirmwarePrintsThem() {
        func n(_ s: String) -> Double? {
            Array(s.utf8).withUnsafeBufferPointer { SensorAnalyzer.number($0, 0..<$0.count) }
        }
        #expect(n("1678380427395440") == 1_678_380_427_395_440)
        #expect(n("-228.63") == -228.63 && n(" 1.013 ") == 1.013 && n("+5") == 5 && n(".5") == 0.5 && n("5.") == 5)
        #expect(n("6.02e23") == 6.02e23 && n("1E-3") == 0.001 && n("92.49") == 92.49)
        for bad in ["", " ", "-", ".", "1e", "nan", "inf", "0x1F", "1.2.3", "1,5", "1e999", "Restarted! | "] {
            #expect(n(bad) == nil, "\(bad)")
        }
    }
}
