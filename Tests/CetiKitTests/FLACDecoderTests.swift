import Foundation
import Testing

@testable import CetiKit

/// FLACDecoder against FLACEncoder (round trips to the same bytes) and against the reference `flac`.
@Suite struct FLACDecoderTests {
    static let flacTool = "/usr/bin/flac"
    static let haveFlacTool = FileManager.default.isExecutableFile(atPath: flacTool)

    /// A temporary directory, removed when `body` returns.
    func inTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ceti-flacdec-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        return try body(dir)
    }

    /// PCM in `format`'s byte layout: a tone plus noise, with the extreme values in the first frames.
    func pcm(_ format: RawFormat, frames: Int, seed: UInt32 = 1) -> [UInt8] {
        let bits = format.bitsPerSample
        let hi = Int64(1) << (bits - 1) - 1
        let lo = -(Int64(1) << (bits - 1))
        let bias: UInt32 = format.signed ? 0 : 1 << UInt32(bits - 1)
        var out: [UInt8] = []
        out.reserveCapacity(frames * format.frameBytes)
        var state = seed
        for i in 0..<frames {
            for c in 0..<format.channels {
                state = state &* 1_103_515_245 &+ 12345
                let noise = Int64(state >> 16 & 0xff) - 128
                let tone = Int64(Double(hi) * 0.6 * sin(Double(i + 37 * c) / 23))
                let v = i == 0 ? hi : i == 1 ? lo : min(hi, max(lo, tone + noise))
                let u = UInt32(truncatingIfNeeded: v) &+ bias
                let le = (0..<format.bytesPerSample).map { UInt8(truncatingIfNeeded: u >> UInt32(8 * $0)) }
                out += format.bigEndian ? le.reversed() : le
            }
        }
        return out
    }

    func write(_ bytes: [UInt8], _ path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }
    func read(_ path: String) -> [UInt8] { FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? [] }

    /// Where two byte strings first differ, nil when equal (a failed `==` on megabytes prints them all).
    func difference(_ a: [UInt8], _ b: [UInt8]) -> String? {
        let common = min(a.count, b.count)
        let i = (0..<common).first { a[$0] != b[$0] } ?? common
        if i == a.count && i == b.count { return nil }
        return "byte \(i) of \(a.count) vs \(b.count)"
    }

    /// Encodes `raw` with ceti's FLACEncoder; returns the FLAC's path.
    func encode(_ raw: [UInt8], _ format: RawFormat, in dir: String) throws -> String {
        let rawPath = dir + "/in.raw"
        let flacPath = dir + "/in.flac"
        try write(raw, rawPath)
        let input = open(rawPath, O_RDONLY)
        let output = open(flacPath, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        try #require(input >= 0 && output >= 0)
        defer {
            close(input)
            close(output)
        }
        _ = try FLACEncoder.encode(
            inputFD: input, inputPath: rawPath, inputSize: Int64(raw.count), pcmOffset: 0, pcmLength: Int64(raw.count),
            format: format, level: 5, outputFD: output, outputPath: flacPath)
        return flacPath
    }

    /// Decodes `flacPath` with ceti into `outPath`.
    @discardableResult
    func decode(
        _ flacPath: String, _ format: RawFormat, to outPath: String, progress: ((Int64) -> Void)? = nil
    ) throws -> FLACDecoder.Result {
        let input = open(flacPath, O_RDONLY)
        let output = open(outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        try #require(input >= 0 && output >= 0)
        defer {
            close(input)
            close(output)
        }
        let result = try FLACDecoder.decode(
            inputFD: input, inputPath: flacPath, format: format, outputFD: output, outputPath: outPath, progress: progress)
        #expect(lseek(input, 0, SEEK_CUR) == 0, "the caller's fd position is left alone")
        return result
    }

    func runFlacTool(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.flacTool)
        process.arguments = ["--silent", "--force"] + arguments
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    static let roundTripFormats: [RawFormat] = [
        .tag,
        RawFormat(channels: 1, bitsPerSample: 24, sampleRate: 48_000, bigEndian: false, signed: true),
        RawFormat(channels: 2, bitsPerSample: 16, sampleRate: 96_000, bigEndian: false, signed: false),
        RawFormat(channels: 1, bitsPerSample: 8, sampleRate: 8_000, bigEndian: false, signed: false),
        RawFormat(channels: 2, bitsPerSample: 24, sampleRate: 96_000, bigEndian: true, signed: false),
    ]

    @Test(arguments: roundTripFormats)
    func roundTripGivesBackTheSameBytes(format: RawFormat) throws {
        try inTemporaryDirectory { dir in
            // Not a whole number of 4096-sample blocks, and more than 1 MiB out for the wider layouts.
            let raw = pcm(format, frames: 70_001)
            let flac = try encode(raw, format, in: dir)
            var progressed: Int64 = 0
            let result = try decode(flac, format, to: dir + "/out.raw") { progressed += $0 }
            #expect(difference(read(dir + "/out.raw"), raw) == nil)
            #expect(result.sha256 == Digest.sha256(raw))
            #expect(result.bytes == Int64(raw.count))
            #expect(result.samples == 70_001)
            #expect(progressed == Int64(read(flac).count))
        }
    }

    @Test func aLayoutMismatchIsRefusedBeforeAnythingIsWritten() throws {
        try inTemporaryDirectory { dir in
            let flac = try encode(pcm(.tag, frames: 5000), .tag, in: dir)
            let wrong = [
                RawFormat(channels: 2, bitsPerSample: 16, sampleRate: 96_000, bigEndian: true, signed: true),
                RawFormat(channels: 3, bitsPerSample: 24, sampleRate: 96_000, bigEndian: true, signed: true),
                RawFormat(channels: 3, bitsPerSample: 16, sampleRate: 48_000, bigEndian: true, signed: true),
            ]
            for format in wrong {
                let error = #expect(throws: FLACDecoder.DecodeError.self) { try decode(flac, format, to: dir + "/out.raw") }
                guard case .layoutMismatch = error else {
                    Issue.record("expected a layout mismatch, got \(String(describing: error))")
                    continue
                }
                let text = error?.description ?? ""
                #expect(text.contains(flac) && text.contains("3-channel 16-bit 96000 Hz"))
                #expect(text.contains(FLACDecoder.describe(format.channels, format.bitsPerSample, format.sampleRate)))
                #expect(read(dir + "/out.raw").isEmpty)
            }
        }
    }

    /// Every way a damaged object can fail; never a layout or not-FLAC refusal.
    func isDamage(_ error: FLACDecoder.DecodeError?) -> Bool {
        switch error {
        case .damaged, .md5Mismatch, .sampleCount: return true
        default: return false
        }
    }

    @Test func aFlippedByteInTheAudioFails() throws {
        try inTemporaryDirectory { dir in
            let flac = try encode(pcm(.tag, frames: 40_000), .tag, in: dir)
            let good = read(flac)
            for at in [good.count / 2, good.count / 3, 2 * good.count / 3, good.count - 3] {
                var bad = good
                bad[at] ^= 0x10
                try write(bad, dir + "/bad.flac")
                let error = #expect(throws: FLACDecoder.DecodeError.self) { try decode(dir + "/bad.flac", .tag, to: dir + "/out.raw") }
                #expect(isDamage(error), "byte \(at): \(String(describing: error))")
            }
        }
    }

    @Test func aWrongStoredMD5IsCaughtByLibFLAC() throws {
        try inTemporaryDirectory { dir in
            let flac = try encode(pcm(.tag, frames: 10_000), .tag, in: dir)
            // STREAMINFO's MD5 is bytes 26..<42: "fLaC", a 4-byte block header, 18 bytes of fields.
            var bad = read(flac)
            bad[30] ^= 0x01
            try write(bad, dir + "/bad.flac")
            let error = #expect(throws: FLACDecoder.DecodeError.self) { try decode(dir + "/bad.flac", .tag, to: dir + "/out.raw") }
            guard case .md5Mismatch = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(error?.description == "\(dir)/bad.flac: stored MD5 differs from the decoded audio (the object is damaged)")

            // All zeros means "no MD5" to libFLAC, which then checks nothing: refused.
            for i in 26..<42 { bad[i] = 0 }
            try write(bad, dir + "/bad.flac")
            let unverifiable = #expect(throws: FLACDecoder.DecodeError.self) {
                try decode(dir + "/bad.flac", .tag, to: dir + "/out.raw")
            }
            guard case .noStoredMD5 = unverifiable else { Issue.record("got \(String(describing: unverifiable))"); return }
        }
    }

    /// Where the first frame starts: after the last metadata block (each has a 4-byte header).
    func audioStart(_ flac: [UInt8]) -> Int {
        var at = 4
        while at + 4 <= flac.count {
            let last = flac[at] & 0x80 != 0
            at += 4 + (Int(flac[at + 1]) << 16 | Int(flac[at + 2]) << 8 | Int(flac[at + 3]))
            if last { break }
        }
        return at
    }

    @Test func aTruncatedFLACFails() throws {
        try inTemporaryDirectory { dir in
            let flac = try encode(pcm(.tag, frames: 40_000), .tag, in: dir)
            let good = read(flac)
            let start = audioStart(good)
            // Inside STREAMINFO, after the metadata, inside the first frame's header, mid-audio.
            for cut in [20, 42, start, start + 3, good.count * 3 / 5, good.count - 1] {
                try write(Array(good.prefix(cut)), dir + "/cut.flac")
                let error = #expect(throws: FLACDecoder.DecodeError.self) { try decode(dir + "/cut.flac", .tag, to: dir + "/out.raw") }
                #expect(isDamage(error), "cut at \(cut): \(String(describing: error))")
            }
            // Cut between frames: libFLAC sees a clean end of stream; the sample count tells.
            try write(Array(good.prefix(start)), dir + "/cut.flac")
            let error = #expect(throws: FLACDecoder.DecodeError.self) { try decode(dir + "/cut.flac", .tag, to: dir + "/out.raw") }
            guard case .sampleCount(_, 0, 40_000) = error else { Issue.record("got \(String(describing: error))"); return }
        }
    }

    @Test func aFileThatIsNotFLACIsRefused() throws {
        try inTemporaryDirectory { dir in
            for (name, bytes) in [("pcm.flac", pcm(.tag, frames: 5000)), ("empty.flac", []), ("short.flac", Array("fLa".utf8))] {
                try write(bytes, dir + "/" + name)
                let error = #expect(throws: FLACDecoder.DecodeError.self) { try decode(dir + "/" + name, .tag, to: dir + "/out.raw") }
                guard case .notFLAC = error else { Issue.record("\(name): got \(String(describing: error))"); continue }
                #expect(error?.description == "\(dir)/\(name) is not a FLAC stream")
            }
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/full"), "no /dev/full to fill"))
    func aFullDiskIsAWriteErrorNamingTheOutput() throws {
        try inTemporaryDirectory { dir in
            let flac = try encode(pcm(.tag, frames: 5000), .tag, in: dir)
            let input = open(flac, O_RDONLY)
            let output = open("/dev/full", O_WRONLY)
            try #require(input >= 0 && output >= 0)
            defer {
                close(input)
                close(output)
            }
            let error = #expect(throws: FLACDecoder.DecodeError.self) {
                try FLACDecoder.decode(inputFD: input, inputPath: flac, format: .tag, outputFD: output, outputPath: "out.raw")
            }
            #expect(error?.description == "cannot write out.raw: No space left on device; free some space and rerun")
        }
    }

    @Test(
        .enabled(if: haveFlacTool, "\(flacTool) is not installed: no cross-check against the reference decoder"),
        arguments: [RawFormat.tag, RawFormat(channels: 2, bitsPerSample: 16, sampleRate: 96_000, bigEndian: false, signed: false)])
    func theReferenceDecoderAgrees(format: RawFormat) throws {
        try inTemporaryDirectory { dir in
            let raw = pcm(format, frames: 30_000, seed: 7)
            let flac = try encode(raw, format, in: dir)
            let status = try runFlacTool([
                "-d", "--force-raw-format", "--endian=\(format.bigEndian ? "big" : "little")",
                "--sign=\(format.signed ? "signed" : "unsigned")", "-o", dir + "/reference.raw", flac,
            ])
            #expect(status == 0)
            try decode(flac, format, to: dir + "/ceti.raw")
            #expect(difference(read(dir + "/ceti.raw"), read(dir + "/reference.raw")) == nil)
            #expect(difference(read(dir + "/ceti.raw"), raw) == nil)
        }
    }

    /// ceti's encoder takes 8 to 24 bits; libFLAC 1.4 decodes 32-bit, which `flac` can make.
    @Test(
        .enabled(if: haveFlacTool, "\(flacTool) is not installed: no 32-bit FLAC to decode"),
        arguments: [true, false])
    func thirtyTwoBitFromTheReferenceEncoder(signed: Bool) throws {
        let format = RawFormat(channels: 2, bitsPerSample: 32, sampleRate: 48_000, bigEndian: !signed, signed: signed)
        try inTemporaryDirectory { dir in
            let raw = pcm(format, frames: 20_000, seed: 3)
            try write(raw, dir + "/in.raw")
            let status = try runFlacTool(
                format.flacFlags.split(separator: " ").map(String.init) + ["--force-raw-format", "-o", dir + "/in.flac", dir + "/in.raw"])
            try #require(status == 0)
            let result = try decode(dir + "/in.flac", format, to: dir + "/out.raw")
            #expect(difference(read(dir + "/out.raw"), raw) == nil)
            #expect(result.sha256 == Digest.sha256(raw))
        }
    }
}
