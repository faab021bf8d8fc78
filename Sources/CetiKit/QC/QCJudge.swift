import Foundation

/// Turns QC's measurements into problems and a device's verdict, with the thresholds in force:
/// `bad` for a dead channel, clipping above `clippingBad`, a damaged file or a recorder stopped
/// longer than `gapBadSeconds`; `warn` for anything else found; `ok` otherwise.
public struct QCJudge: Sendable {
    public let thresholds: QCThresholds

    public init(thresholds: QCThresholds = .init()) {
        self.thresholds = thresholds
    }

    /// `file` with its problems found again.
    public func judge(_ file: FileQC) -> FileQC {
        var out = file
        var found: [QCProblem] = []
        let name = file.name
        if let error = file.error { found.append(QCProblem(.bad, .damaged, file: name, message: "\(name): \(error)")) }
        if let audio = file.audio {
            for c in audio.channels {
                let channel = "\(name): channel \(c.channel + 1) of \(audio.channels.count)"
                if c.dead {
                    found.append(
                        QCProblem(
                            .bad, .deadChannel, file: name, channel: c.channel, message: "\(channel) is dead (\(c.deadReason ?? "silent"))")
                    )
                    continue
                }
                if c.clippedShare > thresholds.clippingWarn {
                    found.append(
                        QCProblem(
                            c.clippedShare > thresholds.clippingBad ? .bad : .warn, .clipping, file: name, channel: c.channel,
                            message: "\(channel) clips: \(Self.percent(c.clippedShare)) of its samples at full scale"))
                }
                if abs(c.dcOffset) > thresholds.dcOffsetWarn {
                    found.append(
                        QCProblem(
                            .warn, .dcOffset, file: name, channel: c.channel,
                            message: "\(channel) has a DC offset of \(Self.percent(c.dcOffset)) of full scale"))
                }
                if c.stuckRuns > 0 {
                    let longest = Double(c.longestStuckRun) / Double(max(1, audio.sampleRate))
                    found.append(
                        QCProblem(
                            .warn, .stuckSamples, file: name, channel: c.channel,
                            message: "\(channel) is stuck on one value \(c.stuckRuns) time\(c.stuckRuns == 1 ? "" : "s"), "
                                + "the longest for \(Self.duration(longest))"))
                }
            }
        }
        if let sensor = file.sensor { found += sensor.problems }
        out.problems = Self.sorted(found)
        return out
    }

    /// The device's verdict over `files` (each judged again) and its recordings' timeline.
    /// `listFiles` false leaves `files` out (a manifest lists each file's QC in its entry).
    public func device(_ device: String, files: [FileQC], listFiles: Bool = true) -> DeviceQC {
        let judged = files.map(judge).sorted { $0.name < $1.name }
        var problems = judged.flatMap(\.problems)
        let placed = judged.compactMap { f -> (FileQC, Int64, Double)? in
            guard let audio = f.audio, f.error == nil, let start = Self.startMs(f.name) else { return nil }
            return (f, start, audio.durationSeconds)
        }.sorted { ($0.1, $0.0.name) < ($1.1, $1.0.name) }
        var timeline: [DeviceQC.Recording] = []
        for (i, (file, start, duration)) in placed.enumerated() {
            var gap: Double?
            if i > 0 {
                let (before, beforeStart, beforeDuration) = placed[i - 1]
                let g = Double(start - beforeStart) / 1000 - beforeDuration
                gap = (g * 1000).rounded() / 1000
                let between = "between \(before.name) and \(file.name)"
                if g > thresholds.gapWarnSeconds {
                    problems.append(
                        QCProblem(
                            g > thresholds.gapBadSeconds ? .bad : .warn, .gap, file: file.name,
                            message: "\(device): no recording for \(Self.duration(g)) \(between)"))
                } else if -g > thresholds.gapWarnSeconds {
                    problems.append(
                        QCProblem(
                            .warn, .overlap, file: file.name,
                            message: "\(device): \(file.name) starts \(Self.duration(-g)) before \(before.name) ends "
                                + "(a clock step?)"))
                }
            }
            timeline.append(DeviceQC.Recording(name: file.name, startMs: start, durationSeconds: duration, gapBeforeSeconds: gap))
        }
        problems = Self.sorted(problems)
        let verdict: DeviceQC.Verdict = problems.contains { $0.severity == .bad } ? .bad : problems.isEmpty ? .ok : .warn
        return DeviceQC(device: device, verdict: verdict, problems: problems, timeline: timeline, files: listFiles ? judged : nil)
    }

    /// Tells the operator a device's verdict: `bad` on stderr whatever the verbosity (a tag that
    /// should not go back into the sea as it is), `warn` and `ok` as information; at most
    /// `shown` problems, then where to see the rest.
    public static func say(_ qc: DeviceQC, console: Console, shown: Int = 10) {
        let recordings = qc.timeline.count
        let hours = qc.timeline.reduce(0) { $0 + $1.durationSeconds }
        let what = recordings > 0 ? " (\(recordings) recording\(recordings == 1 ? "" : "s") placed in time, \(duration(hours)))" : ""
        guard qc.verdict != .ok else {
            console.info("\(qc.device): QC ok\(what), no problems found")
            return
        }
        let say = { (line: String) in qc.verdict == .bad ? console.error(line) : console.info(line) }
        let head =
            qc.verdict == .bad
            ? "\(qc.device): QC bad\(what): check the tag before it is redeployed"
            : "\(qc.device): QC warn\(what)"
        say(head)
        for p in qc.problems.prefix(shown) { say("  \(p.severity.rawValue)  \(p.message)") }
        if qc.problems.count > shown {
            say("  and \(qc.problems.count - shown) more: ceti qc --device \(qc.device)")
        }
    }

    /// Worst first; then by file, channel and column, in the order found.
    static func sorted(_ problems: [QCProblem]) -> [QCProblem] {
        problems.enumerated().sorted { a, b in
            let x = a.element, y = b.element
            if x.severity != y.severity { return x.severity > y.severity }
            if (x.file ?? "") != (y.file ?? "") { return (x.file ?? "") < (y.file ?? "") }
            if (x.channel ?? -1) != (y.channel ?? -1) { return (x.channel ?? -1) < (y.channel ?? -1) }
            return a.offset < b.offset
        }.map(\.element)
    }

    /// The recording's start from its name: the leading number of `<epoch_ms>.flac` or
    /// `<µs>.be.16bit.3ch.96000sps.bin`, in milliseconds; nil when the name gives no plausible
    /// epoch time (before 1973).
    public static func startMs(_ name: String) -> Int64? {
        let digits = name.prefix { $0.isASCII && $0.isNumber }
        guard digits.count >= 9, digits.count < name.count, name[digits.endIndex] == ".", let n = Int64(digits) else {
            return nil
        }
        let ms = RawLayout.milliseconds(n)
        return ms >= 100_000_000_000 ? ms : nil
    }

    static func percent(_ share: Double) -> String {
        let p = share * 100
        return String(format: abs(p) >= 10 ? "%.0f %%" : abs(p) >= 0.1 ? "%.1f %%" : "%.2g %%", p)
    }

    /// "0.25 s", "42 s", "9 min 58 s", "3 h 2 min".
    static func duration(_ seconds: Double) -> String {
        if seconds < 10 { return String(format: "%.2g s", seconds) }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min" + (s % 60 == 0 ? "" : " \(s % 60) s") }
        return "\(s / 3600) h" + (s % 3600 / 60 == 0 ? "" : " \(s % 3600 / 60) min")
    }
}
