/// One channel's quality figures (issue #16). Levels are relative to full scale, 2^(bits-1).
public struct ChannelQC: Sendable, Codable, Equatable {
    /// 0-based.
    public var channel: Int
    /// nil for digital silence (every sample 0).
    public var rmsDBFS: Double?
    public var peakDBFS: Double?
    /// Samples at or within 1 LSB of either end of the range.
    public var clippedSamples: Int64
    public var clippedShare: Double
    /// The mean as a signed fraction of full scale.
    public var dcOffset: Double
    public var dead: Bool
    public var deadReason: String?
    /// The longest run of identical consecutive samples.
    public var longestStuckRun: Int64
    /// Runs of identical samples at least `AudioQCThresholds.stuckRunMinimum` long.
    public var stuckRuns: Int64
    /// RMS dBFS of each of about `envelopePoints` equal blocks, in order; -120 is silence (and the floor).
    public var envelope: [Float]

    /// `rmsDbfs`, not `rmsDBFS`: JSON's snake_case `rms_dbfs` must come back to the same key (the
    /// ledger keeps manifest entries as JSON).
    enum CodingKeys: String, CodingKey {
        case channel, rmsDBFS = "rmsDbfs", peakDBFS = "peakDbfs", clippedSamples, clippedShare, dcOffset, dead, deadReason
        case longestStuckRun, stuckRuns, envelope
    }
}

public struct AudioQC: Sendable, Codable, Equatable {
    public var sampleRate: Int
    public var bitsPerSample: Int
    /// Per channel.
    public var frames: Int64
    public var durationSeconds: Double
    public var channels: [ChannelQC]
}
