import Foundation

/// A streaming accumulator of `AudioQC`, fed the signed samples the FLAC encoder or decoder already
/// holds, so that QC costs no second read of the file. Not thread-safe: one file, one thread;
/// `finish` once, at the end.
///
/// Samples are copied into one span per channel (planar, a few KiB, in cache) and each full span
/// is analysed with 8-sample SIMD vectors: the copy costs less than it saves, since a strided
/// loop does not vectorise on x86-64's baseline (SSE2, no gather), and one kernel serves both
/// feeding paths.
final class AudioAnalyzer {
    /// One channel's running totals.
    private struct Channel {
        /// Exact: |sample| ≤ 2^23, so Int64 holds 2^40 samples, 130 days at 96 kHz.
        var sum: Int64 = 0
        /// Double, not Int64: a 24-bit sample squared is up to 2^46, so an Int64 would overflow
        /// after 2^17 full-scale samples (1.4 s at 96 kHz). A span's squares are summed in
        /// Double lanes (exact for 16-bit) and each span's total added here, a few thousand
        /// additions per file: the relative error stays near 1e-12, so the DC-removed RMS
        /// (sumSquares/n - mean²) is good to below -140 dBFS.
        var sumSquares: Double = 0
        /// Of the envelope block being filled.
        var blockSquares: Double = 0
        var minimum = Int32.max
        var maximum = Int32.min
        var clipped = 0
        /// Length of the run of identical samples the last sample ends; 0 before the first.
        var run = 0
        var longestRun = 0
        var stuckRuns = 0
    }

    /// Frames per span at most: 3 channels × 16 KiB stay in cache between the copy and the
    /// analysis. Spans start at the file's start and at envelope block boundaries, never where a
    /// feed happens to start, so every sum is taken in the same order however the samples come:
    /// any chunking, interleaved or planar, gives bit-identical results.
    private static let span = 4096
    /// Each channel's plane in `scratch`: 8 slots (one vector, keeping the samples 32-byte aligned)
    /// whose last holds the sample before the span, the span, and 8 slots the last vector may read.
    private static let planeStride = 8 + span + 8

    private let format: RawFormat
    private let thresholds: AudioQCThresholds
    private let fullScale: Double
    /// Samples from here to `highestUnclipped` are more than 1 LSB from full scale.
    private let lowestUnclipped: Int32
    private let highestUnclipped: Int32
    private let stuckMinimum: Int
    private let channelCount: Int
    /// Behind a pointer, not in an array property: `&channels[c]` on a class's array costs a
    /// uniqueness check and a runtime exclusivity check per span and channel.
    private let channels: UnsafeMutablePointer<Channel>
    /// Per channel, the sum of squares of each finished envelope block.
    private var blocks: [[Double]]
    private let scratch: UnsafeMutablePointer<Int32>
    /// Indexed by a vector's 8 "equals the sample before" bits.
    private let runPatterns: UnsafeMutablePointer<RunPattern>
    private var spanFill = 0
    /// Frames analysed.
    private var frames: Int64 = 0
    /// Envelope blocks, all `blockFrames` long but the one being filled.
    private var blockFrames: Int
    private var blockFill = 0

    /// `expectedFrames` (per channel) sets the envelope's block length to expectedFrames /
    /// envelopePoints. Without it, blocks start 1 frame long and, each time 2 × envelopePoints
    /// are finished, neighbours merge in pairs and the length doubles: the envelope ends with
    /// envelopePoints to 2 × envelopePoints equal blocks (plus a shorter last one), at the cost
    /// of one pass over a few hundred Doubles per doubling. The same merging bounds the envelope
    /// should a file run longer than expected.
    init(format: RawFormat, expectedFrames: Int64?, thresholds: AudioQCThresholds = .init()) {
        precondition(
            [8, 16, 24].contains(format.bitsPerSample) && format.channels > 0 && format.sampleRate > 0,
            "unsupported layout \(format.flacFlags)")
        self.format = format
        self.thresholds = thresholds
        let top = Int32(1) << (format.bitsPerSample - 1)
        fullScale = Double(top)
        // Full scale is -top ... top-1.
        (lowestUnclipped, highestUnclipped) = (-top + 2, top - 3)
        stuckMinimum = Int(thresholds.stuckRunMinimum(sampleRate: format.sampleRate))
        channelCount = format.channels
        channels = .allocate(capacity: channelCount)
        channels.initialize(repeating: Channel(), count: channelCount)
        blocks = Array(repeating: [], count: channelCount)
        let count = channelCount * Self.planeStride
        scratch = UnsafeMutableRawPointer.allocate(byteCount: 4 * count, alignment: 32).bindMemory(to: Int32.self, capacity: count)
        // Zeros: the sample "before" the first, and defined bytes for the last vector's spare lanes.
        scratch.initialize(repeating: 0, count: count)
        runPatterns = .allocate(capacity: 256)
        for bits in 0..<256 { (runPatterns + bits).initialize(to: RunPattern(bits, stuckMinimum: stuckMinimum)) }
        let points = Int64(max(1, thresholds.envelopePoints))
        blockFrames = expectedFrames.map { Int(max(1, ($0 + points - 1) / points)) } ?? 1
    }

    /// The layouts the analyzer reads: 8, 16 and 24 bits, any channels and rate.
    static func supports(_ format: RawFormat) -> Bool {
        [8, 16, 24].contains(format.bitsPerSample) && format.channels > 0 && format.sampleRate > 0
    }

    deinit {
        channels.deallocate()
        scratch.deallocate()
        runPatterns.deallocate()
    }

    /// Whole frames of interleaved, sign-extended samples, as FLACEncoder hands them to libFLAC.
    func feed(interleaved samples: UnsafeBufferPointer<Int32>) {
        let width = channelCount
        precondition(samples.count % width == 0, "feed whole frames")
        guard let base = samples.baseAddress else { return }
        take(samples.count / width) { c, offset, count, to in
            let from = base + offset * width + c
            for i in 0..<count { to[i] = from[i &* width] }
        }
    }

    /// One plane of `frames` samples per channel, as libFLAC's decoder write callback gives them.
    func feed(planes: [UnsafePointer<Int32>], frames: Int) {
        precondition(planes.count == channelCount, "one plane per channel")
        take(frames) { c, offset, count, to in to.update(from: planes[c] + offset, count: count) }
    }

    /// The first sample of channel `c`'s span.
    private func plane(_ c: Int) -> UnsafeMutablePointer<Int32> { scratch + c * Self.planeStride + 8 }

    /// Fills spans with `copy(channel, offset in the feed, count, destination)` and analyses each
    /// span once it is full.
    private func take(_ count: Int, _ copy: (Int, Int, Int, UnsafeMutablePointer<Int32>) -> Void) {
        var done = 0
        while done < count {
            let n = min(count - done, min(Self.span, blockFrames - blockFill) - spanFill)
            for c in 0..<channelCount { copy(c, done, n, plane(c) + spanFill) }
            done += n
            spanFill += n
            if spanFill == min(Self.span, blockFrames - blockFill) { analyzeSpan() }
        }
    }

    private func analyzeSpan() {
        for c in 0..<channelCount { analyze(plane(c), count: spanFill, into: &channels[c]) }
        frames += Int64(spanFill)
        blockFill += spanFill
        spanFill = 0
        if blockFill == blockFrames { finishBlock() }
    }

    /// The hot loop, over `count` samples at `p` (p[-1] is the sample before them), 8 at a time:
    /// sums and extremes in SIMD lanes, runs of identical samples through `runPatterns`, with no
    /// branch on the signal, so that quiet, silent and loud channels cost the same (a per-sample
    /// run loop was twice as slow on quiet noise, where equal neighbours are common).
    private func analyze(_ p: UnsafeMutablePointer<Int32>, count: Int, into state: inout Channel) {
        let raw = UnsafeRawPointer(p)
        var sum = SIMD4<Double>()
        var squares = SIMD4<Double>()
        var minimum = SIMD8<Int32>(repeating: .max)
        var maximum = SIMD8<Int32>(repeating: .min)
        var (run, longestRun, stuckRuns) = (state.run, state.longestRun, state.stuckRuns)
        let lanes = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)
        // Locals, or the loop reloads them after every store through `p`.
        let (runPatterns, stuckMinimum) = (self.runPatterns, self.stuckMinimum)
        var i = 0
        while i < count {
            let v = raw.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Int32>.self)
            let n = min(8, count &- i)
            var (summed, ranged) = (v, v)
            if n < 8 {
                // The last, short vector: zeros add nothing, and a sample of the span moves no extreme.
                let spare = lanes .>= SIMD8(repeating: Int32(n))
                summed.replace(with: 0, where: spare)
                ranged.replace(with: p[i], where: spare)
            }
            let (low, high) = (SIMD4<Double>(summed.lowHalf), SIMD4<Double>(summed.highHalf))
            sum += low + high
            squares += low * low + high * high
            minimum = pointwiseMin(minimum, ranged)
            maximum = pointwiseMax(maximum, ranged)
            let before = raw.loadUnaligned(fromByteOffset: 4 &* i &- 4, as: SIMD8<Int32>.self)
            if n == 8 {
                // Lane k's "same" as bit k: bytes of 0 or 1 (lane 0 the low byte, little-endian),
                // gathered into the top byte by one multiply.
                let bytes = SIMD8<UInt8>(truncatingIfNeeded: SIMD8<Int32>().replacing(with: 1, where: v .== before))
                let same = (unsafeBitCast(bytes, to: UInt64.self) &* 0x0102_0408_1020_4080) >> 56
                let pattern = runPatterns[Int(same)]
                let carried = run &+ pattern.lead
                stuckRuns &+= (run < stuckMinimum && carried >= stuckMinimum ? 1 : 0) &+ pattern.stuckRuns
                longestRun = max(longestRun, max(carried, pattern.longestRun))
                run = pattern.lead == 8 ? carried : pattern.tail
            } else {
                for k in i..<(i &+ n) {
                    Self.step(same: p[k] == p[k &- 1], run: &run, longest: &longestRun, stuck: &stuckRuns, minimum: stuckMinimum)
                }
            }
            i &+= 8
        }
        if count > 0 { p[-1] = p[count - 1] }
        (state.run, state.longestRun, state.stuckRuns) = (run, longestRun, stuckRuns)
        // Lane sums of samples are exact (4096 × 2^23 < 2^53).
        state.sum &+= Int64(sum.sum())
        let spanSquares = squares.sum()
        state.sumSquares += spanSquares
        state.blockSquares += spanSquares
        let (low, high) = (minimum.min(), maximum.max())
        if low < lowestUnclipped || high > highestUnclipped {
            // Rare: clipped samples are counted only in spans that reach full scale.
            for k in 0..<count where p[k] < lowestUnclipped || p[k] > highestUnclipped { state.clipped += 1 }
        }
        state.minimum = min(state.minimum, low)
        state.maximum = max(state.maximum, high)
    }

    /// One sample's effect on runs: the rule for a short last vector and for `runPatterns`.
    @inline(__always)
    private static func step(same: Bool, run: inout Int, longest: inout Int, stuck: inout Int, minimum: Int) {
        run = same ? run &+ 1 : 1
        longest = max(longest, run)
        // Counts each run once, as it reaches the minimum.
        stuck &+= run == minimum ? 1 : 0
    }

    /// What 8 "equals the sample before" bits (lane 0 lowest) do to runs, for each of the 256.
    private struct RunPattern {
        /// Lanes over which the run carried in goes on: 8 when it covers the vector.
        var lead = 0
        /// Over the runs that start inside the vector: the longest, how many reach the minimum,
        /// and the length of the last one so far (0 when there is none).
        var longestRun = 0
        var stuckRuns = 0
        var tail = 0

        init(_ bits: Int, stuckMinimum: Int) {
            while lead < 8 && bits >> lead & 1 == 1 { lead += 1 }
            for lane in lead..<8 {
                step(same: bits >> lane & 1 == 1, run: &tail, longest: &longestRun, stuck: &stuckRuns, minimum: stuckMinimum)
            }
        }
    }

    private func finishBlock() {
        for c in 0..<channelCount {
            blocks[c].append(channels[c].blockSquares)
            channels[c].blockSquares = 0
        }
        blockFill = 0
        guard blocks[0].count >= 2 * max(1, thresholds.envelopePoints) else { return }
        blocks = blocks.map { b in Swift.stride(from: 0, to: b.count, by: 2).map { b[$0] + b[$0 + 1] } }
        blockFrames *= 2
    }

    func finish() -> AudioQC {
        if spanFill > 0 { analyzeSpan() }
        return AudioQC(
            sampleRate: format.sampleRate, bitsPerSample: format.bitsPerSample, frames: frames,
            durationSeconds: Double(frames) / Double(format.sampleRate),
            channels: (0..<channelCount).map(report))
    }

    private func report(_ c: Int) -> ChannelQC {
        let s = channels[c]
        let n = Double(max(frames, 1))
        let mean = Double(s.sum) / n
        let meanSquare = s.sumSquares / n
        let peak = frames > 0 ? max(-Double(s.minimum), Double(s.maximum)) : 0
        var envelope = blocks[c].map { level(meanSquare: $0 / Double(blockFrames)) }
        if blockFill > 0 { envelope.append(level(meanSquare: s.blockSquares / Double(blockFill))) }

        let reason: String?
        if frames == 0 {
            reason = "no samples"
        } else if s.minimum == s.maximum {
            reason = "all samples equal"
        } else {
            // Without its DC: a disconnected input often reads a constant bias plus a little noise.
            let acMeanSquare = max(0, meanSquare - mean * mean)
            let ac = acMeanSquare > 0 ? dBFS(meanSquare: acMeanSquare) : -Double.infinity
            if ac < thresholds.deadFloorDBFS {
                let shown = String(format: "RMS %.1f dBFS below the floor %.1f dBFS", ac, thresholds.deadFloorDBFS)
                reason = abs(ac - dBFS(meanSquare: meanSquare)) < 0.05 ? shown : shown + " once its DC offset is removed"
            } else {
                reason = nil
            }
        }
        return ChannelQC(
            channel: c,
            rmsDBFS: meanSquare > 0 ? dBFS(meanSquare: meanSquare) : nil,
            peakDBFS: peak > 0 ? 20 * log10(peak / fullScale) : nil,
            clippedSamples: Int64(s.clipped),
            clippedShare: Double(s.clipped) / n,
            dcOffset: mean / fullScale,
            dead: reason != nil, deadReason: reason,
            longestStuckRun: Int64(s.longestRun),
            stuckRuns: Int64(s.stuckRuns),
            envelope: envelope)
    }

    private func dBFS(meanSquare: Double) -> Double {
        10 * log10(meanSquare / (fullScale * fullScale))
    }

    /// An envelope point: to 0.1 dB (plenty for a plot, and half the JSON), -120 at most quiet, so
    /// that silence stays a number JSON can hold.
    private func level(meanSquare: Double) -> Float {
        guard meanSquare > 0 else { return -120 }
        return Float((max(-120, dBFS(meanSquare: meanSquare)) * 10).rounded() / 10)
    }
}
