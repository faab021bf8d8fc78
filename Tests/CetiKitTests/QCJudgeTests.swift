import Foundation
import Testing

@testable import CetiKit

/// Recording QC's verdicts (issue #16): thresholds, the timeline from names, the config section,
/// and the round trip of results through the ledger's JSON.
@Suite struct QCJudgeTests {
    static func channel(_ c: Int, clipped: Double = 0, dc: Double = 0, dead: Bool = false, stuck: Int64 = 0) -> ChannelQC {
        ChannelQC(
            channel: c, rmsDBFS: dead ? nil : -20, peakDBFS: dead ? nil : -6, clippedSamples: Int64(clipped * 96_000),
            clippedShare: clipped, dcOffset: dc, dead: dead, deadReason: dead ? "all samples equal" : nil,
            longestStuckRun: stuck > 0 ? 20_000 : 2, stuckRuns: stuck, envelope: [-20, -20.5])
    }

    static func recording(_ name: String, seconds: Double = 300, _ channels: [ChannelQC]? = nil) -> FileQC {
        let chs = channels ?? (0..<3).map { channel($0) }
        return FileQC(
            name: name,
            audio: AudioQC(
                sampleRate: 96_000, bitsPerSample: 16, frames: Int64(seconds * 96_000), durationSeconds: seconds, channels: chs))
    }

    @Test func eachDefectGetsItsSeverityAndChannel() {
        let judge = QCJudge()
        let f = judge.judge(
            Self.recording(
                "1.raw",
                [
                    Self.channel(0, clipped: 0.02), Self.channel(1, clipped: 0.0005, dc: -0.03),
                    Self.channel(2, dead: true, stuck: 1),
                ]))
        #expect(f.problems.map(\.kind) == [.clipping, .deadChannel, .clipping, .dcOffset])
        #expect(f.problems.map(\.severity) == [.bad, .bad, .warn, .warn])
        #expect(f.problems.map(\.channel) == [0, 2, 1, 1])
        // A dead channel is not also "stuck": one cause, one line.
        #expect(!f.problems.contains { $0.kind == .stuckSamples })
        #expect(f.problems[1].message == "1.raw: channel 3 of 3 is dead (all samples equal)")
        #expect(judge.judge(Self.recording("2.raw")).problems.isEmpty)
        #expect(judge.judge(Self.recording("3.raw", [Self.channel(0, stuck: 2)])).problems.map(\.kind) == [.stuckSamples])
        let damaged = judge.judge(FileQC(name: "4.flac", error: "4.flac is damaged: a frame fails its CRC after sample 9"))
        #expect(damaged.problems.map(\.kind) == [.damaged] && damaged.problems[0].severity == .bad)
    }

    @Test func theTimelineComesFromTheNamesAndDurations() {
        let judge = QCJudge()
        let start: Int64 = 1_700_000_000_000
        let files = [
            Self.recording("\(start).flac"),
            Self.recording("\(start + 300_000).flac"),  // back to back
            Self.recording("\(start + 300_000 + 300_000 + 30_000).flac"),  // 30 s missing: warn
            Self.recording("\((start + 1_230_000) * 1000).be.16bit.3ch.96000sps.bin"),  // µs; 5 min missing: bad
            Self.recording("\(start + 1_530_000 - 10_000).flac"),  // starts 10 s early: an overlap
            Self.recording("notes.flac"),  // no start in its name: not placed
        ]
        let d = judge.device("wt-1", files: files)
        #expect(d.timeline.map(\.gapBeforeSeconds) == [nil, 0, 30, 300, -10])
        #expect(d.problems.map(\.kind) == [.gap, .gap, .overlap])
        #expect(d.problems.map(\.severity) == [.bad, .warn, .warn])
        #expect(d.verdict == .bad && d.files?.count == 6)
        #expect(d.problems[0].message.contains("no recording for 5 min between"))
        #expect(judge.device("wt-2", files: [Self.recording("\(start).flac")]).verdict == .ok)
        #expect(QCJudge.startMs("12345.raw") == nil && QCJudge.startMs("1700000000.raw") == 1_700_000_000_000)
        #expect(QCJudge.startMs("1700000000000") == nil)
    }

    @Test func sensorProblemsWarn() {
        let csv = "Timestamp [us],Pressure [bar]\n" + (0..<200).map { "\(1_700_000_000_000_000 + $0 * 1_000_000),1.5\n" }.joined()
        let analyzer = SensorAnalyzer(name: "p.csv")
        Array(csv.utf8).withUnsafeBytes { analyzer.feed($0) }
        let d = QCJudge().device("wt-1", files: [FileQC(name: "p.csv", sensor: analyzer.finish())])
        #expect(d.verdict == .warn && d.problems.map(\.kind) == [.frozenColumn] && d.problems[0].column == "Pressure [bar]")
    }

    @Test func thresholdsComeFromTheConfigSection() throws {
        let config = try ConfigFile.parse("bucket: b\nqc:\n  clipping_bad_percent: 5\n  gap_bad_seconds: 600\n", path: "/c.yaml")
        let t = try QCThresholds.load(config)
        #expect(t.clippingBad == 0.05 && t.gapBadSeconds == 600 && t.clippingWarn == QCThresholds().clippingWarn)
        let f = QCJudge(thresholds: t).judge(Self.recording("1.raw", [Self.channel(0, clipped: 0.02)]))
        #expect(f.problems.map(\.severity) == [.warn])
        #expect(try QCThresholds.load(ConfigFile.parse("qc:\n", path: "/c.yaml")) == QCThresholds())

        func error(_ text: String) -> String {
            do {
                _ = try QCThresholds.load(try ConfigFile.parse(text, path: "/c.yaml"))
                return ""
            } catch { return "\(error)" }
        }
        #expect(error("qc:\n  loud: 1\n").contains("line 2: qc.loud: unknown threshold"))
        #expect(
            error("qc:\n  gap_bad_seconds: soon\n")
                == "config file /c.yaml, line 2: qc.gap_bad_seconds: expected a number, e.g. `gap_bad_seconds: 1`")
        #expect(error("qc:\n  gap_bad_seconds: -1\n").contains("negative"))
        #expect(error("qc:\n  clipping_warn_percent: 2\n  clipping_bad_percent: 1\n").contains("stricter than bad"))
        #expect(error("qc: 3\n").contains("expected a mapping"))
    }

    /// Manifest entries are kept in the ledger as JSON and read back into the manifest: every
    /// figure must survive (an acronym's key once came back empty).
    @Test func resultsSurviveTheLedgerRoundTrip() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qc-ledger-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ledger = try Ledger(path: dir + "/ledger.sqlite")
        let qc = Self.recording("1.raw", [Self.channel(0, clipped: 0.02), Self.channel(1, dead: true)])
        try ledger.recordQC(path: "/s/wt-1/1.raw", sha256: "ab", qc)
        #expect(try ledger.qc(path: "/s/wt-1/1.raw", sha256: "ab") == qc)
        #expect(try ledger.qc(path: "/s/wt-1/1.raw", sha256: "cd") == nil)
        let judged = QCJudge().judge(qc)
        let back = try Manifest.decoder.decode(FileQC.self, from: Manifest.encoder.encode(judged))
        #expect(back == judged && back.audio?.channels[0].rmsDBFS == -20)
    }
}
