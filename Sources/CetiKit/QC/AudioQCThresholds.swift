public struct AudioQCThresholds: Sendable, Equatable {
    /// -90 dBFS is 1 LSB RMS of a 16-bit recording (-90.3): a channel quieter than that, with its
    /// DC removed, holds less than the converter's own resolution, while a live hydrophone's
    /// self-noise and the sea's ambient noise should sit well above it at any usable gain (to be
    /// confirmed on field recordings).
    public var deadFloorDBFS: Double
    /// 0.1 s: audio that passes through a hydrophone and its preamp is never flat that long (it
    /// would take a signal below 10 Hz with no noise on it), while a dropout, a repeated buffer or
    /// an ADC that stops converting is; 9,600 samples at 96 kHz.
    public var stuckRunSeconds: Double
    /// 200: one point per ~1.5 s of a 5-minute file, enough for a level-over-time plot, and about
    /// 1 KiB of JSON per channel.
    public var envelopePoints: Int

    public init(deadFloorDBFS: Double = -90, stuckRunSeconds: Double = 0.1, envelopePoints: Int = 200) {
        self.deadFloorDBFS = deadFloorDBFS
        self.stuckRunSeconds = stuckRunSeconds
        self.envelopePoints = envelopePoints
    }

    /// In samples at `sampleRate`; at least 2, as a single sample is no run.
    public func stuckRunMinimum(sampleRate: Int) -> Int64 {
        max(2, Int64((stuckRunSeconds * Double(sampleRate)).rounded()))
    }
}
