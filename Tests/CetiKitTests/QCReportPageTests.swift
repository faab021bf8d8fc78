import Foundation
import Testing

@testable import CetiKit

/// The QC report page (`ceti qc --html`, issue #16): self-contained, escaped, every problem named,
/// the timeline's gaps marked, one level line per channel, small for many recordings.
@Suite struct QCReportPageTests {
    static let weird = "a<b>&\"c\".flac"
    static let start: Int64 = 1_700_000_000_000

    /// A channel whose envelope wanders around `level` dBFS (all -120 when dead).
    static func channel(
        _ c: Int, level: Float = -42, dead: Bool = false, clipped: Double = 0, dc: Double = 0, points: Int = 200
    ) -> ChannelQC {
        let envelope: [Float] = (0..<points).map { i in
            dead ? -120 : min(-1, level + 5 * Float(sin(Double(i) / 9 + Double(c))) + 2 * Float(sin(Double(i) * 1.7)))
        }
        return ChannelQC(
            channel: c, rmsDBFS: dead ? nil : Double(level), peakDBFS: dead ? nil : Double(level) + 18,
            clippedSamples: Int64(clipped * 28_800_000), clippedShare: clipped, dcOffset: dc, dead: dead,
            deadReason: dead ? "all samples equal" : nil, longestStuckRun: 0, stuckRuns: 0, envelope: envelope)
    }

    static func recording(_ name: String, seconds: Double = 300, _ channels: [ChannelQC], error: String? = nil) -> FileQC {
        let audio = AudioQC(
            sampleRate: 96_000, bitsPerSample: 16, frames: Int64(seconds * 96_000), durationSeconds: seconds, channels: channels)
        return FileQC(name: name, audio: audio, error: error)
    }

    /// `<epoch ms>.flac` starting `offset` seconds after `start`.
    static func flac(_ offset: Double) -> String { "\(start + Int64(offset * 1000)).flac" }

    /// A pressure CSV at 10 Hz, its temperature column frozen when asked.
    static func csv(frozen: Bool) -> FileQC {
        var text = "Timestamp [us],RTC Count,Notes,Pressure [bar],Water Temperature [C]\n"
        for i in 0..<2000 {
            let t = start * 1000 + Int64(i) * 100_000
            let pressure = 1 + 0.4 * sin(Double(i) / 150) + Double(i % 7) * 0.002
            let temperature = frozen ? 17.5 : 18 + Double(i % 37) * 0.01
            text += "\(t),-1,,\(String(format: "%.3f", pressure)),\(String(format: "%.3f", temperature))\n"
        }
        let analyzer = SensorAnalyzer(name: "data_pressure_temperature.csv")
        Array(text.utf8).withUnsafeBytes { analyzer.feed($0) }
        return FileQC(name: "data_pressure_temperature.csv", sensor: analyzer.finish())
    }

    /// tag-07: a dead channel, clipping, a 10-minute gap, a damaged file with a hostile name, a
    /// frozen CSV column (bad). tag-08: clean (ok). tag-09: a DC offset and an overlap (warn).
    static func devices() -> [DeviceQC] {
        let judge = QCJudge()
        let bad = judge.device(
            "tag-07",
            files: [
                recording(flac(0), [channel(0), channel(1, dead: true), channel(2, level: -9, clipped: 0.02)]),
                recording(flac(900), [channel(0), channel(1), channel(2)]),
                recording(flac(1200), [channel(0), channel(1), channel(2)]),
                recording(weird, seconds: 12, [channel(0, points: 40)], error: "frame 12: CRC-16 mismatch"),
                csv(frozen: true),
            ])
        let clean = judge.device(
            "tag-08",
            files: [recording(flac(0), [channel(0), channel(1)]), recording(flac(300), [channel(0), channel(1)]), csv(frozen: false)])
        let warn = judge.device(
            "tag-09", files: [recording(flac(0), [channel(0, dc: 0.03)]), recording(flac(295), [channel(0)])])
        return [bad, clean, warn]
    }

    static func render(_ devices: [DeviceQC] = devices()) -> String {
        QCReportPage.render(devices: devices, title: "QC <run> & \"friends\"", generatedAt: "2023-11-14T23:00:00Z")
    }

    /// The five specials as entities, written out here rather than borrowed from the page.
    static func escaped(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&apos;")
    }

    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    /// Each device's section, in order.
    static func sections(_ html: String) -> [String] {
        Array(html.components(separatedBy: "<section class=\"device").dropFirst())
    }

    /// Unclosed or crossed elements (void elements and `<… />` aside), or nil when balanced.
    static func unbalanced(_ html: String) -> String? {
        let void: Set<String> = ["meta", "br", "hr", "img", "input", "link", "col", "wbr", "source", "area", "base"]
        var open: [String] = []
        var rest = html[...]
        while let lt = rest.firstIndex(of: "<") {
            guard let gt = rest[lt...].firstIndex(of: ">") else { return "a '<' never closed" }
            let tag = rest[rest.index(after: lt)..<gt]
            rest = rest[rest.index(after: gt)...]
            if tag.hasPrefix("!") { continue }
            if tag.hasPrefix("/") {
                let name = tag.dropFirst().lowercased()
                guard open.last == name else { return "</\(name)> closes <\(open.last ?? "nothing")>" }
                open.removeLast()
                continue
            }
            let name = String(tag.prefix { $0.isLetter || $0.isNumber }).lowercased()
            guard !name.isEmpty else { return "a '<' that opens no element: <\(tag)>" }
            if tag.hasSuffix("/") || void.contains(name) { continue }
            open.append(name)
        }
        return open.isEmpty ? nil : "unclosed: \(open)"
    }

    @Test func theVerdictsAreAsTheDataSays() {
        #expect(Self.devices().map(\.verdict) == [.bad, .ok, .warn])
    }

    @Test func nothingIsFetchedOrRun() {
        let html = Self.render().lowercased()
        for banned in ["<script", "http://", "https://", "<img", "<link", "@import", "@font-face", "<iframe", "javascript:"] {
            #expect(!html.contains(banned), "\(banned)")
        }
        // No inline event handlers either.
        #expect(html.range(of: #"\son[a-z]+\s*="#, options: .regularExpression) == nil)
        #expect(html.hasPrefix("<!doctype html>"))
    }

    @Test func everyProblemIsNamed() {
        let devices = Self.devices()
        let html = Self.render(devices)
        let problems = devices.flatMap(\.problems)
        #expect(problems.count >= 7)
        for kind in [QCProblem.Kind.deadChannel, .clipping, .gap, .damaged, .frozenColumn, .dcOffset, .overlap] {
            #expect(problems.contains { $0.kind == kind }, "\(kind)")
        }
        for p in problems {
            #expect(html.contains(Self.escaped(p.message)), "\(p.message)")
        }
        // The timeline's own problems (no file's card shows them) in their device's section.
        let sections = Self.sections(html)
        #expect(sections[0].contains(Self.escaped(devices[0].problems.first { $0.kind == .gap }!.message)))
        #expect(sections[2].contains(Self.escaped(devices[2].problems.first { $0.kind == .overlap }!.message)))
        // A clean device says so, in the table and in its section.
        #expect(sections[1].contains("no problems found"))
    }

    @Test func dataIsEscapedEverywhere() {
        let html = Self.render()
        #expect(!html.contains(Self.weird))
        #expect(!html.contains("a<b>"))
        #expect(html.contains("<h4 class=\"name\">a&lt;b&gt;&amp;&quot;c&quot;.flac</h4>"))
        #expect(html.contains("frame 12: CRC-16 mismatch"))
        #expect(html.contains("<title>QC &lt;run&gt; &amp; &quot;friends&quot;</title>"))
        #expect(!html.contains("<run>"))
    }

    @Test func theSummaryAndTheBadges() {
        let devices = Self.devices()
        let html = Self.render(devices)
        #expect(
            html.contains(
                "3 devices: <span class=\"count-bad\">1 bad</span>, <span class=\"count-warn\">1 warn</span>, "
                    + "<span class=\"count-ok\">1 ok</span>"))
        let rows = html.components(separatedBy: "<tr").filter { $0.contains("<td class=\"device\">") }
        #expect(rows.count == 3)
        for (i, (device, word)) in zip(devices, ["bad", "ok", "warn"]).enumerated() {
            let anchor = QCReportPage.anchor(device.device, index: i)
            let row = rows.first { $0.contains("href=\"#\(anchor)\">\(device.device)</a>") }
            #expect(row?.contains("<span class=\"badge badge-\(word)\">\(word)</span>") == true, "\(device.device)")
            #expect(html.contains("id=\"\(anchor)\""))
        }
        // Counts: tag-07 has 4 recordings (the damaged one too), 1 sensor file, 15 min 12 s recorded.
        #expect(rows[0].contains("<td class=\"num\">4</td><td class=\"num\">1</td><td class=\"num\">15 min 12 s</td>"))
        // Bad problems before warnings in the table.
        let list = rows[0]
        let firstWarn = list.range(of: "class=\"p-warn\"")!.lowerBound
        let lastBad = list.range(of: "class=\"p-bad\"", options: .backwards)!.lowerBound
        #expect(lastBad < firstWarn)
    }

    @Test func anchorsAreSafe() {
        #expect(QCReportPage.anchor("tag 07/<x>\"", index: 2) == "device-3-tag-07--x--")
        #expect(QCReportPage.anchor("été", index: 0) == "device-1--t-")
        #expect(QCReportPage.anchor("", index: 0) == "device-1")
    }

    @Test func theTimelineMarksTheGapAndTheOverlap() throws {
        let sections = Self.sections(Self.render())
        func timeline(_ section: String) throws -> String {
            let from = try #require(section.range(of: "<svg class=\"timeline\""))
            let to = try #require(section.range(of: "</svg>", range: from.upperBound..<section.endIndex))
            return String(section[from.lowerBound..<to.upperBound])
        }
        let bad = try timeline(sections[0])
        #expect(Self.count("class=\"gap\"", in: bad) == 1)
        #expect(bad.contains(">10 min</text>"))
        #expect(Self.count("class=\"bar\"", in: bad) == 3)
        #expect(Self.count("class=\"overlap\"", in: bad) == 0)
        #expect(bad.contains(">2023-11-14</text>"))
        #expect(bad.contains(">22:15</text>"))  // 1700000000 is 22:13:20 UTC: ticks every 5 min
        let clean = try timeline(sections[1])
        #expect(Self.count("class=\"gap\"", in: clean) == 0)
        #expect(Self.count("class=\"bar\"", in: clean) == 2)
        let warn = try timeline(sections[2])
        #expect(Self.count("class=\"gap\"", in: warn) == 0)
        #expect(Self.count("class=\"overlap\"", in: warn) == 1)
    }

    @Test func eachRecordingHasALinePerChannel() {
        let devices = Self.devices()
        let sections = Self.sections(Self.render(devices))
        for (device, section) in zip(devices, sections) {
            let recordings = device.files!.filter { $0.audio != nil }
            let cards = Array(section.components(separatedBy: "<article class=\"file rec").dropFirst())
            #expect(cards.count == recordings.count)
            for (file, card) in zip(recordings, cards) {
                #expect(card.contains("<h4 class=\"name\">\(Self.escaped(file.name))</h4>"))
                #expect(Self.count("<polyline", in: card) == file.audio!.channels.count, "\(file.name)")
                #expect(Self.count("class=\"clip\"", in: card) == 1)
                for p in file.problems { #expect(card.contains(Self.escaped(p.message))) }
            }
        }
        // The dead channel: dashed and labelled.
        let first = sections[0].components(separatedBy: "<article class=\"file rec")[1]
        #expect(Self.count("stroke-dasharray=\"5 4\"", in: first) == 1)
        #expect(first.contains(">ch 2 dead</text>"))
        #expect(first.contains(">ch 1</text>") && first.contains(">ch 3</text>"))
        // The damaged file's error, in red.
        #expect(sections[0].contains("<p class=\"error\">Could not be read to its end: frame 12: CRC-16 mismatch</p>"))
    }

    @Test func theLevelAxisFitsTheData() {
        // Quiet channels (about -42 ± 7): a floor at -60, not -120.
        let quiet = QCReportPage.levelPlot(Self.recording("x.flac", [Self.channel(0)]).audio!)
        #expect(quiet.contains(">-60</text>") && !quiet.contains(">-70</text>"))
        let dead = QCReportPage.levelPlot(Self.recording("x.flac", [Self.channel(0, dead: true)]).audio!)
        #expect(dead.contains(">-120</text>"))
    }

    @Test func sensorFilesGetSmallPlots() throws {
        let devices = Self.devices()
        let sections = Self.sections(Self.render(devices))
        let card = try #require(sections[0].components(separatedBy: "<article class=\"file sensor").dropFirst().first)
        let series = devices[0].files!.first { $0.sensor != nil }!.sensor!.series
        #expect(!series.isEmpty)
        #expect(Self.count("<svg class=\"spark\"", in: card) == min(6, series.count))
        #expect(card.contains("2000 rows"))
        #expect(card.contains("median interval 0.1 s (10 Hz)"))
        #expect(card.contains("<span class=\"flag\">frozen</span>"))
        #expect(card.contains("max "))
        #expect(card.contains("min "))
    }

    @Test func missingPointsBreakTheLine() {
        let svg = QCReportPage.spark(SensorQC.Series(column: "depth <m>", points: [1, 2, nil, 3, 4, nil, 5]), flag: nil)
        #expect(Self.count("M", in: svg.components(separatedBy: "d=\"")[1].prefix { $0 != "\"" }.description) == 3)
        #expect(svg.contains("depth &lt;m&gt;"))
        #expect(svg.contains(">max 5</text>") && svg.contains(">min 1</text>"))
    }

    @Test func thePageIsWellFormed() {
        let html = Self.render()
        #expect(Self.count("<svg", in: html) == Self.count("</svg>", in: html))
        #expect(Self.unbalanced(html) == nil, "\(Self.unbalanced(html) ?? "")")
        // Coordinates to 1 decimal at most.
        for svg in html.components(separatedBy: "<svg").dropFirst().map({ $0.components(separatedBy: "</svg>")[0] }) {
            #expect(svg.range(of: #"[0-9]\.[0-9]{2,}[ ,"]"#, options: .regularExpression).map { String(svg[$0]) } == nil)
        }
    }

    @Test func hundredsOfRecordingsStaySmall() throws {
        let files = (0..<300).map { i in
            Self.recording(
                Self.flac(Double(i) * 300), [Self.channel(0, points: 1000), Self.channel(1, points: 1000), Self.channel(2, points: 1000)])
        }
        let device = QCJudge().device("tag-big", files: files)
        let html = Self.render([device])
        let plots = html.components(separatedBy: "<svg class=\"level\"").dropFirst().map { $0.components(separatedBy: "</svg>")[0] }
        #expect(plots.count == 300)
        #expect(plots.allSatisfy { $0.utf8.count < 50_000 })
        // 1000 envelope points drawn as 400.
        let points = try #require(plots.first?.components(separatedBy: "points=\"").dropFirst().first?.prefix { $0 != "\"" })
        #expect(points.split(separator: " ").count == QCReportPage.maxPlotPoints)
        #expect(html.utf8.count < 300 * 50_000)
        #expect(Self.unbalanced(html) == nil)
    }

    @Test func writesASamplePage() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("Tests/integration/artifacts")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let page = Self.render()
        let file = folder.appendingPathComponent("qc-report-sample.html")
        try page.write(to: file, atomically: true, encoding: .utf8)
        #expect(try String(contentsOf: file, encoding: .utf8) == page)
    }
}
