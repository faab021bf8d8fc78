import Foundation
import Testing

@testable import CetiKit

/// Where a recording's layout comes from: a .bin's name, the tag's data_config (firmware 2.3.0's
/// format, quirk included), or the options.
@Suite struct RawLayoutTests {
    @Test func aBinSaysItsLayoutInItsName() {
        #expect(
            RawLayout.fromName("1700000000000000.be.16bit.3ch.96000sps.bin")
                == RawFormat(channels: 3, bitsPerSample: 16, sampleRate: 96_000, bigEndian: true, signed: true))
        #expect(RawLayout.fromName("/x/17.le.24bit.2ch.48000sps.BIN")?.bigEndian == false)
        for bad in [
            "17.be.16bit.3ch.bin", "x17.be.16bit.3ch.96000sps.bin", "17.me.16bit.3ch.96000sps.bin",
            "17.be.12bit.3ch.96000sps.bin", "17.be.16bit.0ch.96000sps.bin", "17.be.16bit.3ch.96000sps.raw",
        ] {
            #expect(RawLayout.fromName(bad) == nil, "\(bad)")
        }
    }

    /// As the firmware writes it (utils/config.c config_log): `=:` and a `# KHz` comment.
    @Test func theTagsDataConfigIsReadQuirksAndAll() {
        let text = """
            # Deployment Timestamp: 1700000000000000
            surface_pressure = 1.00 # bar
            audio_filter = sinc5
            audio_bitdepth =: 24
            audio_sample_rate = 48 # KHz
            rec_enabled = true
            """
        let base = RawFormat(channels: 2, bitsPerSample: 16, sampleRate: 44_100, bigEndian: false, signed: false)
        #expect(
            RawLayout.fromDataConfig(text, base: base)
                == RawFormat(channels: 3, bitsPerSample: 24, sampleRate: 48_000, bigEndian: true, signed: true))
        #expect(RawLayout.fromDataConfig("audio_sample_rate = 192 # KHz\n", base: .tag).sampleRate == 192_000)
        #expect(RawLayout.fromDataConfig("audio_sample_rate = 0\n", base: .tag).sampleRate == 750)
        #expect(RawLayout.fromDataConfig("nothing here\n", base: .tag) == .tag)
    }

    @Test func aRawTakesTheNewestDataConfigAtOrBeforeItsStart() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-layout-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Deployment timestamps in microseconds, recordings named in milliseconds.
        try "audio_bitdepth =: 24\naudio_sample_rate = 48 # KHz\n".write(
            toFile: dir + "/data_config_1700000000000000.txt", atomically: true, encoding: .utf8)
        try "audio_bitdepth =: 16\naudio_sample_rate = 192 # KHz\n".write(
            toFile: dir + "/data_config_1700000500000000.txt", atomically: true, encoding: .utf8)
        let first = RawLayout.resolve(dir + "/1700000100000.raw", options: .tag)
        #expect(first.source == "data_config_1700000000000000.txt" && first.format.bitsPerSample == 24 && first.format.sampleRate == 48_000)
        let later = RawLayout.resolve(dir + "/1700000600000.raw", options: .tag)
        #expect(later.source == "data_config_1700000500000000.txt" && later.format.sampleRate == 192_000)
        // Before any deployment config, or without a time in its name: the options.
        #expect(RawLayout.resolve(dir + "/1600000000000.raw", options: .tag) == RawLayout(format: .tag, source: "options"))
        #expect(RawLayout.resolve(dir + "/take1.raw", options: .tag).source == "options")
        #expect(RawFormat(flacFlags: first.format.flacFlags + " -5") == first.format)
    }
}
