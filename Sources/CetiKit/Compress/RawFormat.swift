/// How headerless PCM is laid out: the tag's is 3 channels, 16-bit signed big-endian, 96 kHz.
public struct RawFormat: Sendable, Equatable, Codable {
    public var channels: Int
    public var bitsPerSample: Int
    public var sampleRate: Int
    public var bigEndian: Bool
    public var signed: Bool

    public static let tag = RawFormat(channels: 3, bitsPerSample: 16, sampleRate: 96_000, bigEndian: true, signed: true)

    public init(channels: Int, bitsPerSample: Int, sampleRate: Int, bigEndian: Bool, signed: Bool) {
        self.channels = channels
        self.bitsPerSample = bitsPerSample
        self.sampleRate = sampleRate
        self.bigEndian = bigEndian
        self.signed = signed
    }

    public var bytesPerSample: Int { bitsPerSample / 8 }
    /// One sample of every channel.
    public var frameBytes: Int { bytesPerSample * channels }

    /// What libFLAC 1.4 encodes: 1 to 8 channels, 8/16/24-bit (whole bytes), up to 655,350 Hz.
    public var problem: String? {
        if !(1...8).contains(channels) { return "--channels \(channels): FLAC holds 1 to 8 channels" }
        if ![8, 16, 24].contains(bitsPerSample) { return "--bps \(bitsPerSample): give 16 or 24 (or 8)" }
        if !(1...655_350).contains(sampleRate) { return "--sample-rate \(sampleRate): give a rate from 1 to 655350 Hz" }
        return nil
    }

    /// The flags `flac` needs to decode this back to the same bytes (for messages and the ledger).
    public var flacFlags: String {
        "--channels=\(channels) --bps=\(bitsPerSample) --sample-rate=\(sampleRate) --sign=\(signed ? "signed" : "unsigned") --endian=\(bigEndian ? "big" : "little")"
    }

    /// The layout `flacFlags` wrote (the ledger keeps it in a derivative's parameters); nil when
    /// the text holds no complete layout.
    public init?(flacFlags text: String) {
        var values: [String: String] = [:]
        for word in text.split(separator: " ") where word.hasPrefix("--") {
            let pair = word.dropFirst(2).split(separator: "=", maxSplits: 1)
            if pair.count == 2 { values[String(pair[0])] = String(pair[1]) }
        }
        guard let channels = values["channels"].flatMap({ Int($0) }), let bits = values["bps"].flatMap({ Int($0) }),
            let rate = values["sample-rate"].flatMap({ Int($0) }), let sign = values["sign"], let endian = values["endian"]
        else { return nil }
        self.init(channels: channels, bitsPerSample: bits, sampleRate: rate, bigEndian: endian == "big", signed: sign == "signed")
    }
}
