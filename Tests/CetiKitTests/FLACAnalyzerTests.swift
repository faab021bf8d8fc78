import Foundation
import Testing

@testable import CetiKit

/// FLACAnalyzer on FLACs made here with ceti's encoder: the figures of an AudioAnalyzer fed the
/// same samples, however the bytes are cut, and an error, never a crash or a hang, for every way a
/// stream can be wrong.
@Suite struct FLACAnalyzerTests {
    static let flacTool = "/usr/bin/flac"
    static let haveFlacTool = FileManager.default.isExecutableFile(atPath: flacTool)
    static let name = "1700000000000.flac"

    /// Deterministic (SplitMix64).
    struct Random {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        /// In [-1, 1).
        mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 52) - 1 }

        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// A recording made here: its interleaved samples and its FLAC.
    struct Recording {
        var format: RawFormat
        var samples: [Int32]
        var flac: [UInt8]
        var frames: Int { samples.count / format.channels }
    }

    static func format(_ channels: Int, _ bits: Int, _ rate: Int) -> RawFormat {
        RawFormat(channels: channels, bitsPerSample: bits, sampleRate: rate, bigEndian: false, signed: true)
    }

    /// A temporary directory, removed when `body` returns.
    func inTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-flacqc-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        return try body(dir)
    }

    /// Interleaved samples: in each channel a tone of its own plus noise of `noise` (a share of
    /// full scale), both ends of the range near the start (clipping), and in the last channel a
    /// 0.2 s stuck run (a dropout), so that every figure has something to measure.
    func signal(_ format: RawFormat, seconds: Double, noise: Double = 1.0 / 64, seed: UInt64 = 1) -> [Int32] {
        let (channels, rate) = (format.channels, format.sampleRate)
        let frames = Int(seconds * Double(rate))
        let top = Double(1 << (format.bitsPerSample - 1))
        let stuck = (frames / 3)..<(frames / 3 + rate / 5)
        var random = Random(state: seed)
        var out = [Int32](repeating: 0, count: frames * channels)
        for i in 0..<frames {
            for c in 0..<channels {
                let tone = 0.4 * top * sin(2 * Double.pi * Double(300 + 170 * c) * Double(i) / Double(rate))
                var v = Int32(max(-top, min(top - 1, (tone + noise * top * random.unit()).rounded())))
                if i == 5 { v = Int32(top - 1) }
                if i == 6 { v = Int32(-top) }
                if c == channels - 1 && stuck.contains(i) { v = Int32(top / 5) }
                out[i * channels + c] = v
            }
        }
        return out
    }

    /// Signed little-endian bytes, as `format` lays them out.
    func bytes(_ samples: [Int32], _ format: RawFormat) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(samples.count * format.bytesPerSample)
        for s in samples {
            for b in 0..<format.bytesPerSample { out.append(UInt8(truncatingIfNeeded: s >> (8 * b))) }
        }
        return out
    }

    func write(_ bytes: [UInt8], _ path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }
    func read(_ path: String) -> [UInt8] { FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? [] }

    /// Encodes `samples` with ceti's FLACEncoder (level 5: 4096-sample blocks).
    func recording(_ format: RawFormat, _ samples: [Int32]) throws -> Recording {
        try inTemporaryDirectory { dir in
            let flacPath = try TestFLAC.encode(bytes(samples, format), format: format, in: dir)
            return Recording(format: format, samples: samples, flac: read(flacPath))
        }
    }

    func recording(_ format: RawFormat, seconds: Double, noise: Double = 1.0 / 64, seed: UInt64 = 1) throws -> Recording {
        try recording(format, signal(format, seconds: seconds, noise: noise, seed: seed))
    }

    /// The figures of an AudioAnalyzer fed the samples directly, all at once.
    func expected(_ r: Recording, knownLength: Bool = true) -> AudioQC {
        let analyzer = AudioAnalyzer(format: r.format, expectedFrames: knownLength ? Int64(r.frames) : nil)
        r.samples.withUnsafeBufferPointer { analyzer.feed(interleaved: $0) }
        return analyzer.finish()
    }

    /// A FLACAnalyzer fed `flac` in chunks of the sizes `size` gives in turn (given the bytes left).
    func analyze(_ flac: [UInt8], _ analyzer: FLACAnalyzer? = nil, size: (Int) -> Int) -> FileQC {
        let analyzer = analyzer ?? FLACAnalyzer(name: Self.name)
        flac.withUnsafeBytes { all in
            var at = 0
            while at < all.count {
                let n = max(1, min(size(all.count - at), all.count - at))
                analyzer.feed(UnsafeRawBufferPointer(rebasing: all[at..<(at + n)]))
                at += n
            }
        }
        return analyzer.finish()
    }

    func analyze(_ flac: [UInt8], chunk: Int) -> FileQC { analyze(flac) { _ in chunk } }

    /// Where the first frame starts: after the last metadata block.
    func audioStart(_ flac: [UInt8]) -> Int {
        var at = 4
        while at + 4 <= flac.count {
            let last = flac[at] & 0x80 != 0
            at += 4 + (Int(flac[at + 1]) << 16 | Int(flac[at + 2]) << 8 | Int(flac[at + 3]))
            if last { break }
        }
        return at
    }

    /// Overwrites a STREAMINFO field: `width` bits at `bit` from the start of its body (byte 8).
    func patch(_ flac: inout [UInt8], bit: Int, width: Int, _ value: UInt64) {
        for k in 0..<width {
            let position = 64 + bit + k
            let mask = UInt8(0x80) >> (position % 8)
            let one = value >> (width - 1 - k) & 1 == 1
            flac[position / 8] = one ? flac[position / 8] | mask : flac[position / 8] & ~mask
        }
    }

    // STREAMINFO's fields, as (bit, width) in its body.
    static let minBlocksize = (0, 16)
    static let maxBlocksize = (16, 16)
    static let maxFramesize = (56, 24)
    static let sampleRate = (80, 20)
    static let bitsPerSample = (103, 5)
    static let totalSamples = (108, 36)
    static let md5 = 18

    // MARK: The figures, however the stream is cut

    static let formats = [format(3, 16, 48_000), format(2, 24, 48_000), format(1, 8, 8_000)]

    @Test(arguments: formats)
    func theFiguresAreThoseOfTheSamplesWhateverTheChunks(format: RawFormat) throws {
        let r = try recording(format, seconds: format.bitsPerSample == 24 ? 2.5 : 2)
        let want = expected(r)
        #expect(want.frames == Int64(r.frames))
        #expect(want.channels.last?.stuckRuns == 1, "the signal has a dropout to find")
        var random = Random(state: 42)
        let feedings: [(String, (Int) -> Int)] = [
            ("7 bytes", { _ in 7 }), ("4096 bytes", { _ in 4096 }), ("1 MiB", { _ in 1 << 20 }),
            ("all at once", { $0 }), ("random sizes", { _ in 1 + random.below(200_000) }),
            ("random small sizes", { _ in 1 + random.below(300) }),
        ]
        for (how, size) in feedings {
            let qc = analyze(r.flac, size: size)
            #expect(qc.error == nil, "\(how)")
            #expect(qc.audio == want, "\(how)")
            #expect(qc.name == Self.name)
        }
    }

    @Test func oneByteAtATime() throws {
        let r = try recording(Self.format(3, 16, 48_000), seconds: 0.3)
        let qc = analyze(r.flac, chunk: 1)
        #expect(qc.error == nil)
        #expect(qc.audio == expected(r))
    }

    @Test func aFileOnDiskIsReadAndFed() throws {
        try inTemporaryDirectory { dir in
            let r = try recording(Self.format(3, 16, 96_000), seconds: 12, noise: 0.3)
            #expect(r.flac.count > 3 << 20, "more than one 1 MiB read")
            try write(r.flac, dir + "/x.flac")
            let qc = try FLACAnalyzer.analyze(path: dir + "/x.flac", name: Self.name)
            #expect(qc == FileQC(name: Self.name, audio: expected(r)))
            #expect(throws: FileIOError.self) { try FLACAnalyzer.analyze(path: dir + "/missing.flac", name: "missing.flac") }
        }
    }

    @Test func theBufferStaysSmallWhateverTheFeeds() throws {
        let r = try recording(Self.format(3, 16, 96_000), seconds: 12, noise: 0.3)
        for chunk in [r.flac.count, 1 << 20, 4096] {
            let analyzer = FLACAnalyzer(name: Self.name)
            let qc = analyze(r.flac, analyzer) { _ in chunk }
            #expect(qc.error == nil)
            #expect(qc.audio?.frames == Int64(r.frames))
            // 1 MiB of feed and 128 KiB ahead of libFLAC: never grown for this file of over 5 MiB.
            #expect(analyzer.peakCapacity == FLACAnalyzer.piece + 2 * FLACAnalyzer.margin, "chunks of \(chunk)")
        }
    }

    // MARK: Big metadata

    func le(_ value: Int, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    func chunk(_ id: String, _ body: [UInt8]) -> [UInt8] {
        Array(id.utf8) + le(body.count, 4) + body + (body.count % 2 == 1 ? [0] : [])
    }

    /// Compresses a WAV as `ceti compress` does: its chunks other than the audio go into
    /// APPLICATION blocks "riff".
    func encodeWAV(_ wav: [UInt8], in dir: String) throws -> [UInt8] {
        read(try TestFLAC.encode(wav, format: nil, in: dir))
    }

    @Test func bigMetadataBlocksAreWaitedFor() throws {
        try inTemporaryDirectory { dir in
            let format = Self.format(2, 16, 48_000)
            let samples = signal(format, seconds: 1.5)
            // A 2.5 MB LIST chunk (more than the buffer holds) before the audio, a 2 MB iXML after it.
            let note = Array(String(repeating: "whale ", count: 416_667).utf8)
            let list = chunk("LIST", Array("INFO".utf8) + chunk("ICMT", note))
            let ixml = chunk("iXML", Array(("<BWFXML>" + String(repeating: "<NOTE>ceti</NOTE>", count: 120_000) + "</BWFXML>").utf8))
            let fmt = chunk("fmt ", le(1, 2) + le(2, 2) + le(48_000, 4) + le(48_000 * 4, 4) + le(4, 2) + le(16, 2))
            let body = Array("WAVE".utf8) + fmt + list + chunk("data", bytes(samples, format)) + ixml
            let flac = try encodeWAV(Array("RIFF".utf8) + le(body.count, 4) + body, in: dir)
            #expect(audioStart(flac) > 4_500_000, "the metadata holds both chunks")
            let want = expected(Recording(format: format, samples: samples, flac: flac))
            var random = Random(state: 7)
            let feedings: [(String, (Int) -> Int)] = [
                ("7 bytes", { _ in 7 }), ("4096 bytes", { _ in 4096 }), ("1 MiB", { _ in 1 << 20 }),
                ("random sizes", { _ in 1 + random.below(70_000) }),
            ]
            for (how, size) in feedings {
                let analyzer = FLACAnalyzer(name: Self.name)
                let qc = analyze(flac, analyzer, size: size)
                #expect(qc.error == nil, "\(how)")
                #expect(qc.audio == want, "\(how)")
                #expect(analyzer.peakCapacity < 4 << 20, "\(how): the buffer holds one metadata block at a time, not all")
            }
        }
    }

    // MARK: Damage

    @Test func aFlippedByteIsDamage() throws {
        let r = try recording(Self.format(3, 16, 48_000), seconds: 1)
        // The last frame's CRC-16 is the file's last two bytes.
        var bad = r.flac
        bad[bad.count - 1] ^= 0x01
        let crc = analyze(bad, chunk: 4096)
        let measured = crc.audio?.frames ?? -1
        #expect(crc.error == "\(Self.name) is damaged: a frame fails its CRC after sample \(measured)")
        #expect(measured > 0 && measured < Int64(r.frames), "the frames before it are measured")

        let start = audioStart(r.flac)
        for at in [start + 20, start + (r.flac.count - start) / 3, r.flac.count / 2, r.flac.count - 100] {
            var bad = r.flac
            bad[at] ^= 0x5A
            let qc = analyze(bad, chunk: 1000)
            #expect(qc.error?.hasPrefix("\(Self.name) is damaged: ") == true, "byte \(at): \(qc.error ?? "no error")")
            #expect((qc.audio?.frames ?? .max) < Int64(r.frames), "byte \(at)")
        }

        // Bytes after the last frame: every sample is measured, and the bytes are reported.
        let trailing = analyze(r.flac + Array("not a frame, but some 40 bytes of text".utf8), chunk: 4096)
        #expect(trailing.error == "\(Self.name) is damaged: lost sync (bytes that are not a FLAC frame) after sample \(r.frames)")
        #expect(trailing.audio == expected(r))
    }

    @Test func aTruncatedFileSaysWhereItEnds() throws {
        let r = try recording(Self.format(3, 16, 48_000), seconds: 1)
        let half = analyze(Array(r.flac.prefix(r.flac.count / 2)), chunk: 4096)
        let measured = half.audio?.frames ?? -1
        #expect(half.error == "\(Self.name) ends after sample \(measured) of \(r.frames) (truncated)")
        #expect(measured > 0 && measured < Int64(r.frames))

        // Of unknown length, cut inside a frame: libFLAC's complaint after the end says so.
        var unknown = r.flac
        patch(&unknown, bit: Self.totalSamples.0, width: Self.totalSamples.1, 0)
        let cut = analyze(Array(unknown.prefix(unknown.count / 2)), chunk: 4096)
        #expect(cut.error == "\(Self.name) ends with an incomplete frame after sample \(cut.audio?.frames ?? -1) (truncated)")
        #expect(cut.audio?.frames == measured)

        // Inside the magic, inside STREAMINFO, inside the VORBIS_COMMENT, at the first frame, mid-audio.
        let start = audioStart(r.flac)
        var cuts = [2, 4, 6, 20, 41, 42, 46, start - 1, start, start + 3]
        cuts += stride(from: start + 977, to: r.flac.count, by: r.flac.count / 13)
        for cut in cuts {
            let qc = analyze(Array(r.flac.prefix(cut)), chunk: 333)
            let error = qc.error ?? "no error"
            switch cut {
            case ..<4: #expect(error == "\(Self.name) is not a FLAC stream")
            case ..<42: #expect(error == "\(Self.name) is damaged: it ends before its STREAMINFO (truncated)", "cut at \(cut)")
            case ..<start: #expect(error == "\(Self.name) is damaged: it ends inside its metadata (truncated)", "cut at \(cut)")
            default:
                #expect(error == "\(Self.name) ends after sample \(qc.audio?.frames ?? -1) of \(r.frames) (truncated)", "cut at \(cut)")
            }
        }
    }

    @Test func bytesThatAreNotFLACAreRefused() throws {
        var random = Random(state: 3)
        let pcm = bytes(signal(Self.format(3, 16, 48_000), seconds: 0.2), Self.format(3, 16, 48_000))
        let noise = (0..<300_000).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        for (what, input) in [("empty", []), ("fLa", Array("fLa".utf8)), ("raw PCM", pcm), ("random bytes", noise)] {
            let qc = analyze(input, chunk: 4096)
            #expect(qc.error == "\(Self.name) is not a FLAC stream", "\(what)")
            #expect(qc.audio == nil, "\(what)")
        }
        let magic = analyze(Array("fLaC".utf8), chunk: 1)
        #expect(magic.error == "\(Self.name) is damaged: it ends before its STREAMINFO (truncated)")
        #expect(magic.audio == nil)
        // A first block that is not a STREAMINFO.
        let comment = analyze(Array("fLaC".utf8) + [0x84, 0, 0, 8] + [UInt8](repeating: 0, count: 8), chunk: 5)
        #expect(comment.error == "\(Self.name) is damaged: its first metadata block is not a STREAMINFO")
    }

    @Test func aStoredMD5ThatDiffersOrIsMissingIsReported() throws {
        let r = try recording(Self.format(3, 16, 48_000), seconds: 1)
        var bad = r.flac
        bad[Self.md5 + 8 + 5] ^= 0x01
        let tampered = analyze(bad, chunk: 4096)
        #expect(tampered.error == "\(Self.name): stored MD5 differs from the decoded audio (damaged)")
        #expect(tampered.audio == expected(r), "the audio is still measured")

        for i in (Self.md5 + 8)..<(Self.md5 + 8 + 16) { bad[i] = 0 }
        let missing = analyze(bad, chunk: 4096)
        #expect(missing.error == "\(Self.name) has no stored MD5, so its audio cannot be verified")
        #expect(missing.audio == expected(r))
    }

    @Test func anUnknownLengthIsMeasuredWithAGrowingEnvelope() throws {
        let r = try recording(Self.format(2, 24, 48_000), seconds: 1.2)
        var unknown = r.flac
        patch(&unknown, bit: Self.totalSamples.0, width: Self.totalSamples.1, 0)
        let qc = analyze(unknown, chunk: 5000)
        #expect(qc.error == nil)
        #expect(qc.audio == expected(r, knownLength: false))
        #expect(qc.audio != expected(r), "the envelope's blocks differ from a known length's")
    }

    @Test func aSampleWidthQCCannotMeasureIsReportedNotCrashedOn() throws {
        let r = try recording(Self.format(3, 16, 48_000), seconds: 0.5)
        var twelve = r.flac
        patch(&twelve, bit: Self.bitsPerSample.0, width: Self.bitsPerSample.1, 11)
        let qc = analyze(twelve, chunk: 4096)
        #expect(qc.error == "\(Self.name) holds 12-bit audio: unsupported by QC, which measures 8-, 16- and 24-bit audio")
        #expect(qc.audio == nil)

        var noRate = r.flac
        patch(&noRate, bit: Self.sampleRate.0, width: Self.sampleRate.1, 0)
        #expect(analyze(noRate, chunk: 4096).error == "\(Self.name) is damaged: its STREAMINFO gives a sample rate of 0")
    }

    @Test(.enabled(if: haveFlacTool, "\(flacTool) is not installed: no 32-bit FLAC to read"))
    func thirtyTwoBitFromTheReferenceEncoderIsUnsupported() throws {
        try inTemporaryDirectory { dir in
            let format = RawFormat(channels: 2, bitsPerSample: 32, sampleRate: 48_000, bigEndian: false, signed: true)
            var random = Random(state: 5)
            try write((0..<80_000).map { _ in UInt8(truncatingIfNeeded: random.next()) }, dir + "/in.raw")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.flacTool)
            process.arguments =
                ["--silent", "--force", "--force-raw-format"] + format.flacFlags.split(separator: " ").map(String.init)
                + ["-o", dir + "/in.flac", dir + "/in.raw"]
            try process.run()
            process.waitUntilExit()
            try #require(process.terminationStatus == 0)
            let qc = analyze(read(dir + "/in.flac"), chunk: 4096)
            #expect(qc.error?.contains("32-bit audio: unsupported") == true, "\(qc.error ?? "no error")")
        }
    }

    /// libFLAC must never ask for bytes that are not there yet: it would spin. A frame larger than
    /// STREAMINFO allows is the one way a stream can make it, and stops QC with an error.
    @Test(.timeLimit(.minutes(2)))
    func aFrameLargerThanItsStreamInfoAllowsStopsQCWithoutSpinning() throws {
        // Full-scale noise: 8 × 24-bit verbatim frames of 96 KiB, more than the margin.
        let format = Self.format(8, 24, 48_000)
        let r = try recording(format, signal(format, seconds: 1.5, noise: 0.55))
        #expect(r.flac.count > 1_500_000)
        let good = analyze(r.flac, chunk: 70_000)
        #expect(good.error == nil)
        #expect(good.audio == expected(r))

        var lying = r.flac
        patch(&lying, bit: Self.minBlocksize.0, width: Self.minBlocksize.1, 16)
        patch(&lying, bit: Self.maxBlocksize.0, width: Self.maxBlocksize.1, 16)
        patch(&lying, bit: Self.maxFramesize.0, width: Self.maxFramesize.1, 0)
        let qc = analyze(lying, chunk: 70_000)
        #expect(qc.error?.hasPrefix("\(Self.name): internal error: libFLAC read past the ") == true, "\(qc.error ?? "no error")")
        #expect((qc.audio?.frames ?? .max) < Int64(r.frames))
    }

    /// Random damage, anywhere: always an error when the audio is touched, never a crash.
    @Test func randomDamageIsAlwaysReported() throws {
        let r = try recording(Self.format(3, 16, 48_000), seconds: 0.25)
        let start = audioStart(r.flac)
        var random = Random(state: 11)
        for trial in 0..<150 {
            var bad = r.flac
            var audioTouched = false
            for _ in 0..<(1 + random.below(6)) {
                let at = trial % 3 == 0 ? random.below(start) : random.below(bad.count)
                bad[at] ^= UInt8(1 + random.below(255))
                audioTouched = audioTouched || at >= start
            }
            if trial % 5 == 0 { bad = Array(bad.prefix(random.below(bad.count))) }
            let qc = analyze(bad) { _ in 1 + random.below(5000) }
            if audioTouched { #expect(qc.error != nil, "trial \(trial)") }
        }
        // "fLaC", a STREAMINFO of random fields, then random bytes.
        for trial in 0..<100 {
            var bad = Array("fLaC".utf8) + [trial % 2 == 0 ? 0x80 : 0x00, 0, 0, 34]
            bad += (0..<(34 + random.below(100_000))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if trial % 4 == 0 { patch(&bad, bit: Self.bitsPerSample.0, width: Self.bitsPerSample.1, 15) }
            let qc = analyze(bad) { _ in 1 + random.below(20_000) }
            #expect(qc.error != nil, "trial \(trial)")
        }
    }
}
