import Foundation

/// `ceti qc --html`'s report (issue #16): one self-contained page per run, for the operator on a
/// boat deciding whether a tag recorded well before it is wiped. Inline CSS and inline SVG only:
/// no script, nothing fetched (no URL, no image, no font), readable offline and printable.
///
/// In order: a header (title, time, one-line summary); a table of devices (verdict, counts,
/// recorded time, every problem); then per device its recordings in time, a level-over-time plot
/// of each recording, small plots of each sensor file's columns, and each file's problems under
/// it. Every problem's message is in the page's text; every string from the data is escaped
/// (file names can hold `<`, `&`, quotes and control characters).
public enum QCReportPage {
    /// The whole page.
    public static func render(devices: [DeviceQC], title: String, generatedAt: String) -> String {
        let anchors = devices.enumerated().map { anchor($1.device, index: $0) }
        var out = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(title))</title>
            <style>\(style)</style>
            </head>
            <body>
            <header>
            <h1>\(escape(title))</h1>
            <p class="meta">generated \(escape(generatedAt)) · times in UTC</p>
            <p class="summary">\(summary(devices))</p>
            </header>

            """
        out += overview(devices, anchors: anchors)
        for (i, device) in devices.enumerated() {
            out += section(device, anchor: anchors[i], index: i)
        }
        out += "</body>\n</html>\n"
        return out
    }

    // MARK: Header and overview

    /// "3 devices: 1 bad, 1 warn, 1 ok" (verdicts with no device left out).
    static func summary(_ devices: [DeviceQC]) -> String {
        let head = "\(devices.count) device\(devices.count == 1 ? "" : "s")"
        let counts = [DeviceQC.Verdict.bad, .warn, .ok].compactMap { v -> String? in
            let n = devices.filter { $0.verdict == v }.count
            return n == 0 ? nil : "<span class=\"count-\(v.rawValue)\">\(n) \(v.rawValue)</span>"
        }
        return counts.isEmpty ? head : head + ": " + counts.joined(separator: ", ")
    }

    /// The device's section id: letters, digits, `-` and `_` only, numbered so that two devices
    /// whose names differ only in other characters still differ.
    static func anchor(_ device: String, index: Int) -> String {
        let safe = String(
            device.unicodeScalars.map { s -> Character in
                s.isASCII && (CharacterSet.alphanumerics.contains(s) || s == "-" || s == "_") ? Character(s) : "-"
            })
        return "device-\(index + 1)" + (safe.isEmpty ? "" : "-" + safe)
    }

    private static func overview(_ devices: [DeviceQC], anchors: [String]) -> String {
        guard !devices.isEmpty else { return "<p class=\"empty\">No device to report.</p>\n" }
        let rows = devices.enumerated().map { i, d in
            let recordings = recordingCount(d)
            let sensors = d.files.map { String($0.filter { $0.sensor != nil }.count) } ?? "–"
            return "<tr class=\"verdict-\(d.verdict.rawValue)\"><td class=\"device\"><a href=\"#\(anchors[i])\">"
                + "\(escape(d.device))</a></td><td>\(badge(d.verdict))</td><td class=\"num\">\(recordings)</td>"
                + "<td class=\"num\">\(sensors)</td><td class=\"num\">\(escape(QCJudge.duration(recordedSeconds(d))))</td>"
                + "<td>\(problemList(d.problems, limit: 8, empty: "no problems found"))</td></tr>"
        }
        return """
            <table class="overview">
            <thead><tr><th>Device</th><th>Verdict</th><th>Recordings</th><th>Sensor files</th><th>Recorded</th><th>Problems</th></tr></thead>
            <tbody>
            \(rows.joined(separator: "\n"))
            </tbody>
            </table>

            """
    }

    private static func recordingCount(_ d: DeviceQC) -> Int {
        d.files.map { $0.filter { $0.audio != nil }.count } ?? d.timeline.count
    }

    private static func recordedSeconds(_ d: DeviceQC) -> Double {
        if let files = d.files { return files.compactMap { $0.audio?.durationSeconds }.reduce(0, +) }
        return d.timeline.map(\.durationSeconds).reduce(0, +)
    }

    private static func badge(_ v: DeviceQC.Verdict) -> String {
        "<span class=\"badge badge-\(v.rawValue)\">\(v.rawValue)</span>"
    }

    /// Bad first (stable otherwise); beyond `limit`, the rest folded away (each is also shown
    /// under its file or its device's timeline).
    private static func problemList(_ problems: [QCProblem], limit: Int = .max, empty: String? = nil) -> String {
        guard !problems.isEmpty else { return empty.map { "<span class=\"clean\">\(escape($0))</span>" } ?? "" }
        let sorted = problems.enumerated().sorted { a, b in
            a.element.severity != b.element.severity ? a.element.severity > b.element.severity : a.offset < b.offset
        }.map(\.element)
        func items(_ ps: ArraySlice<QCProblem>) -> String {
            ps.map { "<li class=\"p-\($0.severity.rawValue)\">\(escape($0.message))</li>" }.joined()
        }
        var out = "<ul class=\"problems\">\(items(sorted.prefix(limit)))</ul>"
        if sorted.count > limit {
            out +=
                "<details><summary>\(sorted.count - limit) more</summary><ul class=\"problems\">"
                + "\(items(sorted.dropFirst(limit)))</ul></details>"
        }
        return out
    }

    // MARK: A device

    private static func section(_ d: DeviceQC, anchor: String, index: Int) -> String {
        let files = d.files ?? []
        let recordings = files.filter { $0.audio != nil }
        let sensors = files.filter { $0.audio == nil && $0.sensor != nil }
        let others = files.filter { $0.audio == nil && $0.sensor == nil }
        // Problems no file's card shows: the timeline's, and every one when files are not listed.
        let shown = Set(files.flatMap { $0.problems.map(\.message) })
        let rest = d.problems.filter { !shown.contains($0.message) }
        let sensorCount = d.files.map { String($0.filter { $0.sensor != nil }.count) } ?? "–"
        var out = """
            <section class="device verdict-\(d.verdict.rawValue)" id="\(anchor)">
            <h2>\(escape(d.device)) \(badge(d.verdict))</h2>
            <p class="meta">\(recordingCount(d)) recordings · \(sensorCount) sensor files · \
            \(escape(QCJudge.duration(recordedSeconds(d)))) recorded</p>
            <h3>Recordings in time</h3>
            \(timeline(d.timeline, index: index))

            """
        if !rest.isEmpty {
            out += "<div class=\"device-problems\">\(problemList(rest))</div>\n"
        } else if d.problems.isEmpty {
            out += "<p class=\"clean\">no problems found</p>\n"
        }
        if !recordings.isEmpty {
            out += "<h3>Recordings</h3>\n" + recordings.map(recordingCard).joined(separator: "\n") + "\n"
        }
        if !sensors.isEmpty {
            out += "<h3>Sensor files</h3>\n" + sensors.map(sensorCard).joined(separator: "\n") + "\n"
        }
        if !others.isEmpty {
            out += "<h3>Other files</h3>\n" + others.map(otherCard).joined(separator: "\n") + "\n"
        }
        return out + "</section>\n"
    }

    // MARK: The timeline

    /// The recordings from the first start to the last end, a bar each; gaps longer than a second
    /// red and hatched, labelled with their length; overlaps amber; UTC times below.
    static func timeline(_ recordings: [DeviceQC.Recording], index: Int) -> String {
        guard let first = recordings.first else {
            return "<p class=\"empty\">No recording placed in time (no name gives its start).</p>"
        }
        let (width, left, right) = (1000.0, 12.0, 988.0)
        let (barTop, barHeight, axisY) = (24.0, 24.0, 54.0)
        let t0 = Double(first.startMs) / 1000
        let t1 = recordings.map { Double($0.startMs) / 1000 + $0.durationSeconds }.max() ?? t0
        let span = max(t1 - t0, 1)
        func x(_ t: Double) -> Double { left + (t - t0) / span * (right - left) }
        let hatch = "hatch-\(index + 1)"
        var svg = "<svg class=\"timeline\" viewBox=\"0 0 \(n(width)) 92\" role=\"img\" aria-label=\"recordings in time\">"
        svg +=
            "<defs><pattern id=\"\(hatch)\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
            + "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#fce8e6\"/>"
            + "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#d93025\" stroke-width=\"3\"/></pattern></defs>"
        svg += "<rect x=\"\(n(left))\" y=\"\(n(barTop))\" width=\"\(n(right - left))\" height=\"\(n(barHeight))\" fill=\"#f1f3f4\"/>"
        var marks = ""
        var labelEnd = -Double.infinity
        for (i, r) in recordings.enumerated() {
            let start = Double(r.startMs) / 1000
            let x0 = x(start)
            let w = max(1, x(start + r.durationSeconds) - x0)
            let fill = i % 2 == 0 ? "#4285f4" : "#1a5fb4"
            svg +=
                "<rect class=\"bar\" x=\"\(n(x0))\" y=\"\(n(barTop))\" width=\"\(n(w))\" height=\"\(n(barHeight))\" fill=\"\(fill)\">"
                + "<title>\(escape(r.name)) · \(clock(Int64(start * 1000), seconds: true)) · "
                + "\(escape(QCJudge.duration(r.durationSeconds)))</title></rect>"
            guard let gap = r.gapBeforeSeconds else { continue }
            if gap > 1 {
                let length = escape(QCJudge.duration(gap))
                let gx = x(start - gap)
                let gw = max(2, x0 - gx)
                marks +=
                    "<rect class=\"gap\" x=\"\(n(min(gx, x0 - gw)))\" y=\"\(n(barTop - 2))\" width=\"\(n(gw))\" "
                    + "height=\"\(n(barHeight + 4))\" fill=\"url(#\(hatch))\" stroke=\"#d93025\" stroke-width=\"1\">"
                    + "<title>gap of \(length) before \(escape(r.name))</title></rect>"
                // A label where it does not run into the one before (about 6 units a character).
                let centre = gx + gw / 2
                let half = Double(length.count) * 3 + 2
                if centre - half > labelEnd {
                    marks += "<text class=\"gap-label\" x=\"\(n(centre))\" y=\"\(n(barTop - 6))\" text-anchor=\"middle\">\(length)</text>"
                    labelEnd = centre + half
                }
            } else if gap < -1 {
                let ox = x0
                let ow = max(2, min(x(start - gap), x0 + w) - x0)
                marks +=
                    "<rect class=\"overlap\" x=\"\(n(ox))\" y=\"\(n(barTop - 2))\" width=\"\(n(ow))\" "
                    + "height=\"\(n(barHeight + 4))\" fill=\"#f9ab00\" fill-opacity=\"0.8\" stroke=\"#b06000\" stroke-width=\"1\">"
                    + "<title>\(escape(r.name)) overlaps the recording before by \(escape(QCJudge.duration(-gap)))</title></rect>"
            }
        }
        svg += marks
        svg += "<line x1=\"\(n(left))\" y1=\"\(n(axisY))\" x2=\"\(n(right))\" y2=\"\(n(axisY))\" stroke=\"#5f6368\" stroke-width=\"1\"/>"
        svg += axis(from: t0, to: t0 + span, x: x, y: axisY)
        svg += "</svg>"
        let legend =
            "<p class=\"legend\"><span class=\"sw sw-bar\"></span>recording <span class=\"sw sw-gap\"></span>gap "
            + "<span class=\"sw sw-overlap\"></span>overlap · \(recordings.count) placed, "
            + "\(clock(first.startMs, seconds: false, date: true)) to \(clock(Int64(t1 * 1000), seconds: false, date: true)) UTC</p>"
        return svg + legend
    }

    /// Ticks at a round UTC step (at most about 8), HH:MM (HH:MM:SS below a minute); the date
    /// under the first tick and wherever it changes.
    private static func axis(from t0: Double, to t1: Double, x: (Double) -> Double, y: Double) -> String {
        let steps: [Double] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800]
        let span = t1 - t0
        let step = steps.first { span / $0 <= 8 } ?? 604800
        let first = Int64((t0 * 1000).rounded())
        var lastDate = utc(first).date
        // The start's date under the axis' left end; again under the first tick of each new day.
        var out = "<text class=\"date\" x=\"\(n(x(t0)))\" y=\"\(n(y + 29))\">\(lastDate)</text>"
        var t = (t0 / step).rounded(.up) * step
        var ticks = 0
        while t <= t1 + 1e-6 {
            let ms = Int64((t * 1000).rounded())
            let tx = x(t)
            out += "<line x1=\"\(n(tx))\" y1=\"\(n(y))\" x2=\"\(n(tx))\" y2=\"\(n(y + 4))\" stroke=\"#5f6368\" stroke-width=\"1\"/>"
            let anchor = tx < 40 ? "start" : tx > 960 ? "end" : "middle"
            out +=
                "<text class=\"tick\" x=\"\(n(tx))\" y=\"\(n(y + 15))\" text-anchor=\"\(anchor)\">"
                + "\(clock(ms, seconds: step < 60))</text>"
            let date = utc(ms).date
            // Not where it would run into the start's date (about 60 units wide).
            if date != lastDate && tx - x(t0) > 120 {
                out += "<text class=\"date\" x=\"\(n(tx))\" y=\"\(n(y + 29))\" text-anchor=\"\(anchor)\">\(date)</text>"
                lastDate = date
            }
            ticks += 1
            t += step
        }
        if ticks == 0 {
            // No round time inside (a span of a few seconds): the start's time.
            out += "<text class=\"tick\" x=\"\(n(x(t0)))\" y=\"\(n(y + 15))\">\(clock(first, seconds: true))</text>"
        }
        return out
    }

    /// "2023-11-14" and "22:13:20" in UTC.
    static func utc(_ ms: Int64) -> (date: String, time: String) {
        let text = Timestamp.iso8601(Date(timeIntervalSince1970: Double(ms) / 1000))
        return (String(text.prefix(10)), String(text.dropFirst(11).prefix(8)))
    }

    private static func clock(_ ms: Int64, seconds: Bool, date: Bool = false) -> String {
        let (d, t) = utc(ms)
        return (date ? d + " " : "") + (seconds ? t : String(t.prefix(5)))
    }

    // MARK: A recording

    /// Channel colours, as in the legend.
    static let colours = ["#1a73e8", "#e8710a", "#188038", "#9334e6", "#d01884", "#12b5cb", "#7c5f00", "#5f6368"]

    /// Envelope points drawn at most per channel: longer envelopes are reduced to the loudest of
    /// each equal run.
    static let maxPlotPoints = 400

    private static func recordingCard(_ f: FileQC) -> String {
        guard let audio = f.audio else { return otherCard(f) }
        let start = QCJudge.startMs(f.name).map { " · starts \(clock($0, seconds: true, date: true)) UTC" } ?? ""
        let facts =
            "\(escape(QCJudge.duration(audio.durationSeconds))) · \(audio.sampleRate) Hz · "
            + "\(audio.bitsPerSample) bit · \(audio.channels.count) ch\(start)"
        let rows = audio.channels.map { c in
            let colour = colours[c.channel % colours.count]
            let swatch = "<span class=\"sw\" style=\"background:\(colour)\"></span>"
            let state =
                c.dead
                ? "<span class=\"dead\">dead</span>"
                : c.clippedShare > 0 ? "<span class=\"clipped\">clips</span>" : "ok"
            return "<tr class=\"\(c.dead ? "row-dead" : "")\"><td>\(swatch)ch \(c.channel + 1)</td>"
                + "<td class=\"num\">\(level(c.rmsDBFS))</td><td class=\"num\">\(level(c.peakDBFS))</td>"
                + "<td class=\"num\">\(escape(QCJudge.percent(c.clippedShare)))</td>"
                + "<td class=\"num\">\(escape(QCJudge.percent(c.dcOffset)))</td><td>\(state)</td></tr>"
        }
        let table =
            "<table class=\"channels\"><thead><tr><th>Channel</th><th>RMS dBFS</th><th>Peak dBFS</th>"
            + "<th>Clipped</th><th>DC</th><th></th></tr></thead><tbody>\(rows.joined())</tbody></table>"
        return """
            <article class="file rec \(cardClass(f))">
            <h4 class="name">\(escape(f.name))</h4>
            <div class="rec-body">\(levelPlot(audio))<div class="facts"><p>\(facts)</p>\(table)</div></div>
            \(errorLine(f))\(problemList(f.problems))
            </article>
            """
    }

    private static func level(_ v: Double?) -> String {
        v.map { String(format: "%.1f", $0) } ?? "−∞"
    }

    private static func cardClass(_ f: FileQC) -> String {
        f.problems.contains { $0.severity == .bad } ? "card-bad" : f.problems.isEmpty ? "card-ok" : "card-warn"
    }

    private static func errorLine(_ f: FileQC) -> String {
        f.error.map { "<p class=\"error\">Could not be read to its end: \(escape($0))</p>" } ?? ""
    }

    /// Each channel's envelope over the file, the y-axis from 0 dBFS (full scale, where samples
    /// clip) down to 6 dB below the quietest point, in steps of 10 dB, at most to -120.
    static func levelPlot(_ audio: AudioQC) -> String {
        let (width, height) = (600.0, 176.0)
        let (left, right, top, bottom) = (40.0, 590.0, 22.0, 154.0)
        let envelopes = audio.channels.map { reduce($0.envelope, to: maxPlotPoints) }
        let lowest = envelopes.joined().map(Double.init).filter(\.isFinite).min() ?? -60
        let floor = max(-120, ((min(lowest, -6) - 6) / 10).rounded(.down) * 10)
        func y(_ v: Double) -> Double { top + (min(0, max(floor, v)) / floor) * (bottom - top) }
        var svg = "<svg class=\"level\" viewBox=\"0 0 \(n(width)) \(n(height))\" role=\"img\" aria-label=\"level over time\">"
        // Grid and its labels.
        let gridStep = -floor > 60 ? 20.0 : 10.0
        var g = -gridStep
        while g >= floor - 1e-9 {
            svg += "<line x1=\"\(n(left))\" y1=\"\(n(y(g)))\" x2=\"\(n(right))\" y2=\"\(n(y(g)))\" stroke=\"#e8eaed\" stroke-width=\"1\"/>"
            svg += "<text class=\"ylab\" x=\"\(n(left - 4))\" y=\"\(n(y(g) + 3))\" text-anchor=\"end\">\(n(g))</text>"
            g -= gridStep
        }
        svg +=
            "<rect x=\"\(n(left))\" y=\"\(n(top))\" width=\"\(n(right - left))\" height=\"\(n(bottom - top))\" "
            + "fill=\"none\" stroke=\"#bdc1c6\" stroke-width=\"1\"/>"
        // Full scale: where samples clip.
        svg +=
            "<line class=\"clip\" x1=\"\(n(left))\" y1=\"\(n(top))\" x2=\"\(n(right))\" y2=\"\(n(top))\" stroke=\"#d93025\" "
            + "stroke-width=\"1.5\" stroke-dasharray=\"6 3\"/>"
        svg += "<text class=\"ylab clip-label\" x=\"\(n(right))\" y=\"\(n(top - 4))\" text-anchor=\"end\">clipping (0 dBFS)</text>"
        svg += "<text class=\"ylab\" x=\"\(n(left - 4))\" y=\"\(n(top + 3))\" text-anchor=\"end\">0</text>"
        svg += "<text class=\"ylab\" x=\"4\" y=\"\(n(top - 8))\">dBFS</text>"
        // Time labels.
        let xl = "<text class=\"ylab\" y=\"\(n(bottom + 14))\" "
        svg += xl + "x=\"\(n(left))\">0</text>"
        svg += xl + "x=\"\(n((left + right) / 2))\" text-anchor=\"middle\">\(escape(QCJudge.duration(audio.durationSeconds / 2)))</text>"
        svg += xl + "x=\"\(n(right))\" text-anchor=\"end\">\(escape(QCJudge.duration(audio.durationSeconds)))</text>"
        // The channels, the live ones over the dead.
        var deadLabels = 0
        for (i, c) in audio.channels.enumerated().sorted(by: { ($0.element.dead ? 0 : 1, $0.offset) < ($1.element.dead ? 0 : 1, $1.offset) }
        ) {
            let env = envelopes[i]
            guard !env.isEmpty else { continue }
            let colour = colours[c.channel % colours.count]
            let xs: [Double] =
                env.count == 1 ? [left, right] : env.indices.map { left + (Double($0) + 0.5) / Double(env.count) * (right - left) }
            let ys = env.count == 1 ? [y(Double(env[0])), y(Double(env[0]))] : env.map { y(Double($0)) }
            let points = zip(xs, ys).map { "\(n($0)),\(n($1))" }.joined(separator: " ")
            let dash = c.dead ? " stroke-dasharray=\"5 4\"" : ""
            svg +=
                "<polyline class=\"ch\" points=\"\(points)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.4\" "
                + "stroke-linejoin=\"round\"\(dash)><title>ch \(c.channel + 1)\(c.dead ? " (dead)" : "")</title></polyline>"
            if c.dead {
                let ly = max(top + 22, ys.last! - 4)
                svg +=
                    "<text class=\"dead-label\" x=\"\(n(right - 4 - Double(deadLabels) * 80))\" y=\"\(n(ly))\" "
                    + "text-anchor=\"end\" fill=\"\(colour)\">ch \(c.channel + 1) dead</text>"
                deadLabels += 1
            }
        }
        // The legend, above the plot.
        var lx = left
        for c in audio.channels {
            let colour = colours[c.channel % colours.count]
            let dash = c.dead ? " stroke-dasharray=\"4 3\"" : ""
            let label = "ch \(c.channel + 1)\(c.dead ? " dead" : "")"
            svg += "<line x1=\"\(n(lx))\" y1=\"10\" x2=\"\(n(lx + 16))\" y2=\"10\" stroke=\"\(colour)\" stroke-width=\"2.5\"\(dash)/>"
            svg += "<text class=\"legend-text\" x=\"\(n(lx + 20))\" y=\"14\">\(label)</text>"
            lx += 20 + Double(label.count) * 6.5 + 14
        }
        return svg + "</svg>"
    }

    /// At most `count` points: the loudest of each equal run when there are more.
    static func reduce(_ envelope: [Float], to count: Int) -> [Float] {
        guard envelope.count > count else { return envelope }
        return (0..<count).map { i in
            let from = i * envelope.count / count
            let to = max(from + 1, (i + 1) * envelope.count / count)
            return envelope[from..<to].max()!
        }
    }

    // MARK: A sensor file

    private static func sensorCard(_ f: FileQC) -> String {
        guard let s = f.sensor else { return otherCard(f) }
        var facts = ["\(s.rows) rows"]
        if let median = s.medianIntervalSeconds, median > 0 {
            let unit = s.timestampUnit == nil ? "" : " s"
            let rate = s.timestampUnit == nil ? "" : " (\(SensorAnalyzer.format(1 / median)) Hz)"
            facts.append("median interval \(SensorAnalyzer.format(median))\(unit)\(rate)")
        }
        if let t = s.timestampColumn { facts.append("timestamp column \(escape(t))") }
        facts.append("\(s.badRows) bad rows")
        facts.append("\(s.gapCount) gaps")
        let flagged = Dictionary(
            s.frozenColumns.map { ($0, "frozen") } + s.outOfRange.map { ($0.column, "out of range") },
            uniquingKeysWith: { a, b in a + ", " + b })
        let plots = s.series.prefix(6).map { spark($0, flag: flagged[$0.column]) }.joined()
        return """
            <article class="file sensor \(cardClass(f))">
            <h4 class="name">\(escape(f.name))</h4>
            <p class="facts">\(facts.joined(separator: " · "))</p>
            \(plots.isEmpty ? "" : "<div class=\"sparks\">\(plots)</div>")
            \(errorLine(f))\(problemList(f.problems))
            </article>
            """
    }

    /// One column over the file: its name, its highest and lowest mean, a line broken where a
    /// run held no value.
    static func spark(_ series: SensorQC.Series, flag: String?) -> String {
        let (width, height) = (260.0, 64.0)
        let (left, right, top, bottom) = (4.0, 256.0, 14.0, 52.0)
        let values = series.points.compactMap { $0 }.map(Double.init).filter(\.isFinite)
        let title =
            "<div class=\"spark-title\">\(escape(series.column))"
            + (flag.map { " <span class=\"flag\">\(escape($0))</span>" } ?? "") + "</div>"
        var svg = "<svg class=\"spark\" viewBox=\"0 0 \(n(width)) \(n(height))\" role=\"img\" aria-label=\"\(escape(series.column))\">"
        svg += "<rect x=\"\(n(left))\" y=\"\(n(top))\" width=\"\(n(right - left))\" height=\"\(n(bottom - top))\" fill=\"#f8f9fa\"/>"
        guard let lo = values.min(), let hi = values.max() else {
            svg += "<text class=\"ylab\" x=\"\(n(width / 2))\" y=\"\(n((top + bottom) / 2 + 3))\" text-anchor=\"middle\">no values</text>"
            return "<div class=\"spark-box\(flag == nil ? "" : " flagged")\">\(title)\(svg)</svg></div>"
        }
        let count = max(1, series.points.count)
        func x(_ i: Int) -> Double {
            count == 1 ? (left + right) / 2 : left + Double(i) / Double(count - 1) * (right - left)
        }
        func y(_ v: Double) -> Double { hi > lo ? bottom - (v - lo) / (hi - lo) * (bottom - top) : (top + bottom) / 2 }
        var d = ""
        var pen = false
        for (i, p) in series.points.enumerated() {
            guard let p, p.isFinite else {
                pen = false
                continue
            }
            d += (pen ? "L" : "M") + "\(n(x(i))) \(n(y(Double(p))))"
            if !pen && (i + 1 == series.points.count || series.points[i + 1] == nil) {
                // A lone point: a short tick, so that it shows.
                d += "h1"
            }
            pen = true
        }
        let colour = flag == nil ? "#1a73e8" : "#b06000"
        svg += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.4\" stroke-linejoin=\"round\"/>"
        svg += "<text class=\"ylab\" x=\"\(n(left))\" y=\"\(n(top - 3))\">max \(escape(SensorAnalyzer.format(hi)))</text>"
        svg += "<text class=\"ylab\" x=\"\(n(left))\" y=\"\(n(bottom + 10))\">min \(escape(SensorAnalyzer.format(lo)))</text>"
        return "<div class=\"spark-box\(flag == nil ? "" : " flagged")\">\(title)\(svg)</svg></div>"
    }

    // MARK: Any other file

    private static func otherCard(_ f: FileQC) -> String {
        """
        <article class="file other \(cardClass(f))">
        <h4 class="name">\(escape(f.name))</h4>
        \(f.error == nil ? "<p class=\"facts\">not analysed</p>" : errorLine(f))\(problemList(f.problems))
        </article>
        """
    }

    // MARK: Text

    /// Text for an element or a quoted attribute, as the status page escapes it.
    static func escape(_ text: String) -> String { StatusPage.escape(text) }

    /// A coordinate to 1 decimal, without a trailing ".0".
    static func n(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let tenths = Int((v * 10).rounded())
        let sign = tenths < 0 ? "-" : ""
        let a = abs(tenths)
        return a % 10 == 0 ? "\(sign)\(a / 10)" : "\(sign)\(a / 10).\(a % 10)"
    }

    private static let style = """
        *{box-sizing:border-box}
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;margin:0 auto;padding:1.5em;max-width:1240px;color:#202124;background:#fff}
        h1{margin:0;font-size:1.6em}h2{font-size:1.3em;margin:0 0 .2em;display:flex;align-items:center;gap:.5em}
        h3{font-size:1.05em;margin:1.3em 0 .5em;color:#3c4043}
        h4.name{margin:0 0 .4em;font:600 1em "DejaVu Sans Mono",ui-monospace,monospace;overflow-wrap:anywhere}
        .meta{color:#5f6368;margin:.2em 0 .6em}
        .summary{font-size:1.15em;font-weight:600;margin:.2em 0 1.2em}
        .count-bad{color:#c5221f}.count-warn{color:#b06000}.count-ok{color:#188038}
        table{border-collapse:collapse}
        th,td{border:1px solid #dadce0;padding:.35em .6em;text-align:left;vertical-align:top}
        th{background:#f1f3f4;font-weight:600}
        td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
        table.overview{width:100%;margin-bottom:1.5em}
        table.overview td.device{font-family:"DejaVu Sans Mono",ui-monospace,monospace;overflow-wrap:anywhere}
        a{color:#1a73e8}
        .badge{display:inline-block;border-radius:3px;padding:.05em .55em;font-size:.85rem;font-weight:700;color:#fff;text-transform:uppercase;letter-spacing:.04em}
        .badge-ok{background:#188038}.badge-warn{background:#e37400}.badge-bad{background:#c5221f}
        ul.problems{margin:.2em 0;padding:0;list-style:none}
        ul.problems li{margin:.1em 0;overflow-wrap:anywhere;padding-left:1.3em;text-indent:-1.3em}
        li.p-bad{color:#a50e0e}li.p-bad::before{content:"✖";display:inline-block;width:1.3em;text-indent:0}
        li.p-warn{color:#7a4a00}li.p-warn::before{content:"▲";display:inline-block;width:1.3em;text-indent:0}
        .file ul.problems li{padding:.25em .5em .25em 1.8em;border-radius:3px;margin:.25em 0}
        .file li.p-bad{background:#fce8e6}.file li.p-warn{background:#fef7e0}
        .clean{color:#188038}
        details summary{cursor:pointer;color:#5f6368}
        section.device{border-top:3px solid #dadce0;padding-top:1em;margin-top:2em}
        section.verdict-bad{border-top-color:#c5221f}section.verdict-warn{border-top-color:#e37400}section.verdict-ok{border-top-color:#188038}
        .device-problems{margin:.4em 0}
        svg{display:block;font-family:system-ui,"DejaVu Sans",sans-serif}
        svg.timeline{width:100%;height:auto}
        svg text{font-size:10px;fill:#5f6368}
        svg text.gap-label{fill:#c5221f;font-weight:700}svg text.date{fill:#202124;font-weight:600}
        svg text.dead-label{font-weight:700}svg text.clip-label{fill:#c5221f}svg text.legend-text{fill:#202124;font-size:11px}
        .legend{color:#5f6368;font-size:.9em;margin:.2em 0}
        .sw{display:inline-block;width:.9em;height:.9em;border-radius:2px;vertical-align:-.1em;margin:0 .35em 0 .2em}
        .sw-bar{background:#4285f4}.sw-gap{background:#fce8e6;border:2px solid #d93025}.sw-overlap{background:#f9ab00}
        .file{border:1px solid #dadce0;border-left:5px solid #188038;border-radius:4px;padding:.7em .9em;margin:.7em 0;break-inside:avoid}
        .file.card-warn{border-left-color:#e37400}.file.card-bad{border-left-color:#c5221f}
        .rec-body{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
        svg.level{flex:1 1 520px;max-width:680px;height:auto}
        .facts{margin:0 0 .4em;color:#3c4043}
        .rec-body .facts{flex:1 1 360px}
        table.channels{font-size:.92em}
        tr.row-dead td{background:#fce8e6}
        .dead{color:#c5221f;font-weight:700}.clipped{color:#b06000;font-weight:700}
        .error{color:#c5221f;font-weight:600;overflow-wrap:anywhere}
        .sparks{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:.6em;margin:.4em 0}
        .spark-box{border:1px solid #e8eaed;border-radius:3px;padding:.3em .4em}
        .spark-box.flagged{border-color:#e37400;background:#fffaf0}
        .spark-title{font-size:.88em;font-weight:600;overflow-wrap:anywhere}
        .flag{color:#b06000;font-weight:700}
        svg.spark{width:100%;height:auto}
        .empty{color:#5f6368}
        @media print{
        body{max-width:none;padding:0;font-size:11px}
        a{color:inherit;text-decoration:none}
        .badge{color:#000!important;background:#fff!important;border:1px solid #5f6368}
        section.device{break-before:page}
        .file,tr,svg{break-inside:avoid}
        }
        """
}
