import Foundation
import Testing

@testable import CetiKit

/// The audio half of recording QC (issue #16) on signals made here, whose figures are known.
@Suite struct AudioAnalyzerTests {
    static let rate = 96_000

    func format(bits: Int, channels: Int) -> RawFormat {
        RawFormat(channels: channels, bitsPerSample: bits, sampleRate: Self.rate, bigEndian: true, signed: true)
    }

    func fullScale(_ bits: Int) -> Double { Double(1 << (bits - 1)) }

    /// Deterministic uniform noise (SplitMix64).
    struct Random {
        var state: UInt64
        /// In [-1, 1).
        mutating func next() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 52) - 1
        }
    }

    /// A 1 kHz sine of `amplitude` LSB: a whole number of periods in every 96 samples.
    func sine(_ frames: Int, amplitude: Double, hz: Double = 1000) -> [Int32] {
        (0..<frames).map { Int32((amplitude * sin(2 * Double.pi * hz * Double($0) / Double(Self.rate))).rounded()) }
    }

    /// A sine whose RMS is `dBFS`.
    func sine(_ frames: Int, dBFS: Double, bits: Int, hz: Double = 1000) -> [Int32] {
        sine(frames, amplitude: fullScale(bits) * pow(10, dBFS / 20) * 2.squareRoot(), hz: hz)
    }

    /// Uniform white noise whose RMS is `dBFS` (before rounding to whole LSBs).
    func noise(_ frames: Int, dBFS: Double, bits: Int, seed: UInt64 = 1) -> [Int32] {
        let amplitude = fullScale(bits) * pow(10, dBFS / 20) * 3.squareRoot()
        var random = Random(state: seed)
        return (0..<frames).map { _ in Int32((amplitude * random.next()).rounded()) }
    }

    func interleave(_ planes: [[Int32]]) -> [Int32] {
        (0..<planes[0].count).flatMap { i in planes.map { $0[i] } }
    }

    enum Feeding {
        case interleaved(chunkFrames: [Int])
        case planar(chunkFrames: [Int])
    }

    /// QC of `planes`, fed whole or in chunks of the given frame counts, taken in turn.
    func analyze(
        _ planes: [[Int32]], bits: Int, knownLength: Bool = true, feeding: Feeding = .interleaved(chunkFrames: []),
        thresholds: AudioQCThresholds = .init()
    ) -> AudioQC {
        let frames = planes[0].count
        let analyzer = AudioAnalyzer(
            format: format(bits: bits, channels: planes.count), expectedFrames: knownLength ? Int64(frames) : nil, thresholds: thresholds)
        func chunks(_ sizes: [Int], _ body: (Range<Int>) -> Void) {
            var (start, next) = (0, 0)
            while start < frames {
                let n = sizes.isEmpty ? frames : sizes[next % sizes.count]
                body(start..<min(frames, start + n))
                (start, next) = (start + n, next + 1)
            }
        }
        switch feeding {
        case .interleaved(let sizes):
            let samples = interleave(planes)
            samples.withUnsafeBufferPointer { all in
                chunks(sizes) { range in
                    analyzer.feed(
                        interleaved: UnsafeBufferPointer(
                            rebasing: all[(range.lowerBound * planes.count)..<(range.upperBound * planes.count)]))
                }
            }
        case .planar(let sizes):
            let pointers = planes.map { plane in
                let p = UnsafeMutablePointer<Int32>.allocate(capacity: plane.count)
                p.initialize(from: plane, count: plane.count)
                return p
            }
            defer { pointers.forEach { $0.deallocate() } }
            chunks(sizes) { range in
                analyzer.feed(planes: pointers.map { UnsafePointer($0 + range.lowerBound) }, frames: range.count)
            }
        }
        return analyzer.finish()
    }

    @Test(arguments: [16, 24]) func sineAndNoiseLevels(bits: Int) throws {
        let frames = Self.rate
        let full = sine(frames, amplitude: fullScale(bits) - 1)
        let quiet = sine(frames, dBFS: -20, bits: bits)
        let hiss = noise(frames, dBFS: -30, bits: bits)
        let qc = analyze([full, quiet, hiss], bits: bits)
        #expect(qc.frames == Int64(frames) && qc.durationSeconds == 1 && qc.sampleRate == Self.rate && qc.bitsPerSample == bits)
        let (a, b, c) = (qc.channels[0], qc.channels[1], qc.channels[2])
        #expect(try abs(#require(a.rmsDBFS) + 3.0103) < 0.05)
        #expect(try abs(#require(a.peakDBFS)) < 0.01)
        #expect(try abs(#require(b.rmsDBFS) + 20) < 0.05)
        #expect(try abs(#require(b.peakDBFS) + 20 - 3.0103) < 0.05)
        #expect(try abs(#require(c.rmsDBFS) + 30) < 0.1)
        #expect(b.clippedSamples == 0 && c.clippedSamples == 0)
        #expect(qc.channels.allSatisfy { !$0.dead && $0.deadReason == nil && abs($0.dcOffset) < 0.001 && $0.stuckRuns == 0 })
        #expect(qc.channels.map(\.channel) == [0, 1, 2])
    }

    @Test(arguments: [16, 24]) func deadChannelsSayWhy(bits: Int) {
        let frames = Self.rate
        let qc = analyze(
            [Array(repeating: 0, count: frames), noise(frames, dBFS: -100, bits: bits), noise(frames, dBFS: -60, bits: bits)], bits: bits)
        let (zeros, faint, live) = (qc.channels[0], qc.channels[1], qc.channels[2])
        #expect(zeros.dead && zeros.deadReason == "all samples equal")
        #expect(zeros.rmsDBFS == nil && zeros.peakDBFS == nil)
        #expect(faint.dead && faint.rmsDBFS.map { $0 < -90 } == true)
        #expect(faint.deadReason?.hasPrefix("RMS -") == true && faint.deadReason?.hasSuffix("below the floor -90.0 dBFS") == true)
        #expect(!live.dead && live.deadReason == nil)
        // A constant other than 0 is dead too, and has a level.
        let stuck = analyze([Array(repeating: 1234, count: 1000)], bits: bits).channels[0]
        #expect(stuck.dead && stuck.deadReason == "all samples equal" && stuck.rmsDBFS != nil)
    }

    /// A disconnected input reads a bias plus a little noise: dead once the bias is removed.
    @Test func aFaintChannelOnADCOffsetIsDead() {
        let frames = Self.rate
        let biased = noise(frames, dBFS: -100, bits: 24).map { $0 + 100_000 }
        let channel = analyze([biased], bits: 24).channels[0]
        #expect(channel.dead)
        #expect(channel.deadReason?.hasSuffix("once its DC offset is removed") == true)
        #expect(channel.rmsDBFS.map { $0 > -40 } == true)
    }

    @Test(arguments: [16, 24]) func clippingCountsSamplesWithin1LSBOfFullScale(bits: Int) {
        let top = Int32(1) << (bits - 1)
        // Every 50th sample at one of the four clipped values: 2 %.
        let ends = [top - 1, -top, top - 2, -top + 1]
        var samples = noise(100_000, dBFS: -20, bits: bits)
        for i in Swift.stride(from: 0, to: samples.count, by: 50) { samples[i] = ends[i / 50 % 4] }
        let clipped = analyze([samples], bits: bits).channels[0]
        #expect(clipped.clippedSamples == 2000)
        #expect(abs(clipped.clippedShare - 0.02) < 0.001)
        #expect(clipped.peakDBFS == 0)
        // The edge: 2 LSB from either end is not clipped.
        let edge = analyze([[top - 1, top - 2, top - 3, -top, -top + 1, -top + 2]], bits: bits).channels[0]
        #expect(edge.clippedSamples == 4)
    }

    @Test func clippingIn8Bit() {
        let channel = analyze([[127, 126, 125, -128, -127, -126, 0]], bits: 8).channels[0]
        #expect(channel.clippedSamples == 4 && channel.peakDBFS == 0)
    }

    @Test(arguments: [16, 24]) func dcOffsetIsTheMeanAsAFractionOfFullScale(bits: Int) {
        let shift = Int32(0.1 * fullScale(bits))
        let hiss = noise(Self.rate, dBFS: -30, bits: bits)
        let qc = analyze([hiss.map { $0 + shift }, hiss.map { $0 - shift }], bits: bits)
        #expect(abs(qc.channels[0].dcOffset - 0.1) < 0.001)
        #expect(abs(qc.channels[1].dcOffset + 0.1) < 0.001)
        #expect(!qc.channels[0].dead)
    }

    @Test(arguments: [16, 24]) func aStuckRunInNoiseIsFound(bits: Int) {
        var samples = noise(2 * Self.rate, dBFS: -20, bits: bits)
        // Half a second in the middle (not on a vector boundary) held at a value the noise (±0.17 of
        // full scale) never reaches.
        let held = (Self.rate * 3 / 4 + 3)..<(Self.rate * 5 / 4 + 3)
        for i in held { samples[i] = Int32(0.5 * fullScale(bits)) }
        let channel = analyze([samples], bits: bits).channels[0]
        #expect(channel.longestStuckRun == Int64(held.count))
        #expect(channel.stuckRuns == 1)
        #expect(!channel.dead && channel.clippedSamples == 0)
    }

    @Test func stuckRunsAreCountedOnceEachFromTheMinimumOn() {
        let minimum = Int(AudioQCThresholds().stuckRunMinimum(sampleRate: Self.rate))
        #expect(minimum == 9600)
        // Runs of exactly the minimum, one short of it, and a long one, between noise.
        var samples: [Int32] = []
        for (n, length) in [minimum, minimum - 1, 5 * minimum].enumerated() {
            samples += noise(1001, dBFS: -20, bits: 16, seed: UInt64(n)) + Array(repeating: 20_000, count: length)
        }
        let channel = analyze([samples + noise(1000, dBFS: -20, bits: 16)], bits: 16).channels[0]
        #expect(channel.stuckRuns == 2)
        #expect(channel.longestStuckRun == Int64(5 * minimum))
    }

    /// Against a plain sample-by-sample reference, on noise of ±2 LSB (equal neighbours
    /// everywhere) broken by plateaus of random length, value and position, some at full scale;
    /// with the default stuck-run minimum and with one of 3 samples, which short runs reach.
    @Test(arguments: [16, 24], [0.1, 3.0 / 96_000]) func itAgreesWithAPlainReference(bits: Int, stuckRunSeconds: Double) throws {
        let top = Int32(1) << (bits - 1)
        var random = Random(state: UInt64(bits))
        var samples = noise(300_000, dBFS: bits == 16 ? -90 : -138, bits: bits)
        for _ in 0..<40 {
            let length = Int((random.next() + 1) * 15_000)
            let start = Int((random.next() + 1) / 2 * Double(samples.count - length))
            let value = [top - 1, -top, top - 2, Int32(random.next() * 1000)][Int((random.next() + 1) * 2)]
            for i in start..<(start + length) { samples[i] = value }
        }
        let thresholds = AudioQCThresholds(stuckRunSeconds: stuckRunSeconds)
        let minimum = Int(thresholds.stuckRunMinimum(sampleRate: Self.rate))
        var (run, longest, stuck, clipped, sum, squares) = (0, 0, 0, 0, Int64(0), 0.0)
        for (i, v) in samples.enumerated() {
            run = i > 0 && v == samples[i - 1] ? run + 1 : 1
            longest = max(longest, run)
            stuck += run == minimum ? 1 : 0
            clipped += v >= top - 2 || v <= -top + 1 ? 1 : 0
            sum += Int64(v)
            squares += Double(v) * Double(v)
        }
        let channel = analyze([samples], bits: bits, feeding: .planar(chunkFrames: [4096, 999]), thresholds: thresholds).channels[0]
        #expect(channel.longestStuckRun == Int64(longest) && channel.stuckRuns == Int64(stuck))
        #expect(stuck > 0 && clipped > 0)
        #expect(channel.clippedSamples == Int64(clipped))
        #expect(channel.dcOffset == Double(sum) / Double(samples.count) / fullScale(bits))
        let peak = Double(samples.map { Int64($0).magnitude }.max()!)
        #expect(channel.peakDBFS == 20 * log10(peak / fullScale(bits)))
        let rms = 10 * log10(squares / Double(samples.count) / (fullScale(bits) * fullScale(bits)))
        #expect(try abs(#require(channel.rmsDBFS) - rms) < 1e-9)
    }

    /// Three channels of different signals, 16- and 24-bit: any feeding gives the very same QC.
    @Test(arguments: [16, 24]) func feedingPlanarOrInterleavedInAnyChunksGivesTheSameResult(bits: Int) {
        let frames = 3 * Self.rate + 17
        let planes = [
            sine(frames, dBFS: -6, bits: bits), noise(frames, dBFS: -40, bits: bits),
            noise(frames, dBFS: -10, bits: bits, seed: 7).map { $0 + 1000 },
        ]
        for knownLength in [true, false] {
            let whole = analyze(planes, bits: bits, knownLength: knownLength)
            for feeding in [
                Feeding.planar(chunkFrames: []), .interleaved(chunkFrames: [1, 7, 4095, 4097, 12_345]),
                .planar(chunkFrames: [4096, 1152, 3, 65_537]),
            ] {
                #expect(analyze(planes, bits: bits, knownLength: knownLength, feeding: feeding) == whole, "\(feeding)")
            }
        }
    }

    @Test func theEnvelopeShowsASilentMiddle() throws {
        // 3 s of a -20 dBFS sine, the middle second silent; 288,000 / 200 = 1,440 frames (15 periods) per point.
        let frames = 3 * Self.rate
        let silent = Self.rate..<2 * Self.rate
        let signal = sine(frames, dBFS: -20, bits: 16).enumerated().map { silent.contains($0.offset) ? 0 : $0.element }
        let envelope = analyze([signal], bits: 16).channels[0].envelope
        #expect(envelope.count == 200)
        // Points wholly inside the silent second, and wholly outside it.
        #expect(envelope[67..<133].allSatisfy { $0 == -120 })
        #expect(envelope[0..<66].allSatisfy { abs($0 + 20) < 0.15 })
        #expect(envelope[134...].allSatisfy { abs($0 + 20) < 0.15 })

        // Unknown length: 1-frame blocks, merged in pairs at 400; the last merge (at 400 × 512
        // frames) left 1,024-frame blocks: 281 of them and a last one of 256 frames.
        let unknown = analyze([signal], bits: 16, knownLength: false).channels[0].envelope
        #expect(unknown.count == 282)
        // 96,000 / 1,024 = 93.75 and 192,000 / 1,024 = 187.5.
        #expect(unknown[94..<187].allSatisfy { $0 == -120 })
        #expect(unknown[0..<93].allSatisfy { abs($0 + 20) < 0.15 })
        #expect(unknown[188...].allSatisfy { abs($0 + 20) < 0.15 })
    }

    @Test func aCleanRecordingPasses() {
        let frames = 2 * Self.rate
        let planes = (0..<3).map { c in
            zip(sine(frames, dBFS: -30, bits: 16, hz: 300 + 1000 * Double(c)), noise(frames, dBFS: -50, bits: 16, seed: UInt64(c))).map(+)
        }
        let qc = analyze(planes, bits: 16)
        #expect(qc.channels.count == 3)
        for channel in qc.channels {
            #expect(!channel.dead && channel.clippedSamples == 0 && channel.clippedShare == 0)
            #expect(abs(channel.dcOffset) < 0.001)
            #expect(channel.stuckRuns == 0 && channel.longestStuckRun < 20)
            #expect(channel.rmsDBFS.map { abs($0 + 30) < 0.2 } == true)
            #expect(channel.envelope.count == 200)
        }
    }

    @Test func itEncodesAsJSONSilenceIncluded() throws {
        let qc = analyze([Array(repeating: 0, count: 1000), noise(1000, dBFS: -20, bits: 16)], bits: 16)
        let json = try JSONEncoder().encode(qc)
        #expect(try JSONDecoder().decode(AudioQC.self, from: json) == qc)
        #expect(qc.channels[0].envelope.allSatisfy { $0 == -120 })
    }
}
