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
        if a == b { return nil }  // the library's compare: fast in a debug build
        let common = min(a.count, b.count)
        let i = (0..<common).first { a[$0] != b[$0] } ?? common
        if i == a.count && i == b.count { return nil }
        return "byte \(i) of \(a.count) vs \(b.count)"
    }

    /// Encodes `raw` with ceti's FLACEncoder; returns the FLAC's path.
    func encode(_ raw: [UInt8], _ format: RawFormat, in dir: String) throws -> String {
        try TestFLAC.encode(raw, format: format, in: dir)
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

    // MARK: WAV, with the chunks around its audio kept as `flac --keep-foreign-metadata` keeps them

    /// Little-endian bytes of `value`.
    func le(_ value: UInt64, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    /// A RIFF chunk: its id, size, body and, when the body's length is odd, `pad`.
    func chunk(_ id: String, _ body: [UInt8], pad: UInt8 = 0) -> [UInt8] {
        Array(id.utf8) + le(UInt64(body.count), 4) + body + (body.count % 2 == 1 ? [pad] : [])
    }

    /// The fmt chunk flac itself writes: PCM, or WAVE_FORMAT_EXTENSIBLE when `mask` is given.
    func fmt(_ format: RawFormat, mask: UInt32? = nil) -> [UInt8] {
        var body =
            le(mask == nil ? 1 : 0xFFFE, 2) + le(UInt64(format.channels), 2) + le(UInt64(format.sampleRate), 4)
            + le(UInt64(format.sampleRate * format.frameBytes), 4) + le(UInt64(format.frameBytes), 2) + le(UInt64(format.bitsPerSample), 2)
        if let mask {
            body += le(22, 2) + le(UInt64(format.bitsPerSample), 2) + le(UInt64(mask), 4)
            body += [0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71]
        }
        return chunk("fmt ", body)
    }

    /// A WAV of `chunks`, its RIFF size that of the file less 8 bytes.
    func riff(_ chunks: [[UInt8]]) -> [UInt8] {
        let body = chunks.reduce(into: Array("WAVE".utf8)) { $0.append(contentsOf: $1) }
        return Array("RIFF".utf8) + le(UInt64(body.count), 4) + body
    }

    static func wavFormat(_ channels: Int, _ bits: Int, _ rate: Int) -> RawFormat {
        RawFormat(channels: channels, bitsPerSample: bits, sampleRate: rate, bigEndian: false, signed: bits > 8)
    }

    /// The WAVs of the brief, each as flac would write its header: `flac -d --keep-foreign-metadata`
    /// gives them back byte for byte too.
    func wavCases() -> [(name: String, wav: [UInt8], format: RawFormat, audio: [UInt8])] {
        let stereo = Self.wavFormat(2, 16, 48_000)
        let three = Self.wavFormat(3, 24, 96_000)
        let mono8 = Self.wavFormat(1, 8, 8_000)
        let list = chunk("LIST", Array("INFO".utf8) + chunk("ISFT", Array("ceti test\0".utf8)))
        // GUANO metadata (as bat recorders write it), odd-sized; a non-zero pad byte is kept as it is.
        let guano = chunk("guan", Array("GUANO|Version:1.0\nMake:Wildlife Acoustics\n".utf8), pad: 0x55)
        let ixml = chunk("iXML", Array("<BWFXML><PROJECT>ceti</PROJECT></BWFXML>\n".utf8))
        let audio = (pcm(stereo, frames: 30_001), pcm(three, frames: 20_000, seed: 2), pcm(stereo, frames: 9_999, seed: 3))
        // Odd-length audio: flac writes a zero pad byte after it, before the chunks that follow.
        let odd = pcm(mono8, frames: 10_001, seed: 4)
        return [
            ("plain", riff([fmt(stereo), chunk("data", audio.0)]), stereo, audio.0),
            ("extensible", riff([fmt(three, mask: 0x7), chunk("data", audio.1)]), three, audio.1),
            ("chunks", riff([fmt(stereo), list, guano, chunk("data", audio.2), ixml]), stereo, audio.2),
            ("odd8bit", riff([fmt(mono8), chunk("data", odd), chunk("id3 ", [1, 2, 3])]), mono8, odd),
        ]
    }

    /// Compresses `wav` as `ceti compress` does (WAVHeader, then FLACEncoder with its chunks).
    @discardableResult
    func encodeWAV(_ wav: [UInt8], in dir: String, name: String = "in") throws -> String {
        let wavPath = dir + "/\(name).wav"
        let flacPath = dir + "/\(name).flac"
        try write(wav, wavPath)
        let input = open(wavPath, O_RDONLY)
        let output = open(flacPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        try #require(input >= 0 && output >= 0)
        defer {
            close(input)
            close(output)
        }
        let header = try WAVHeader.parse(fd: input, path: wavPath, fileSize: Int64(wav.count))
        let result = try FLACEncoder.encode(
            inputFD: input, inputPath: wavPath, inputSize: Int64(wav.count), pcmOffset: header.dataOffset,
            pcmLength: header.dataLength, format: header.format, level: 5, outputFD: output, outputPath: flacPath,
            foreign: header.foreign)
        #expect(result.inputSHA256 == Digest.sha256(wav), "the input's hash covers every byte, stored ones included")
        return flacPath
    }

    @discardableResult
    func decodeWAV(_ flacPath: String, to outPath: String, progress: ((Int64) -> Void)? = nil) throws -> FLACDecoder.Result {
        let input = open(flacPath, O_RDONLY)
        let output = open(outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        try #require(input >= 0 && output >= 0)
        defer {
            close(input)
            close(output)
        }
        return try FLACDecoder.decodeWAV(inputFD: input, inputPath: flacPath, outputFD: output, outputPath: outPath, progress: progress)
    }

    /// The metadata blocks of a FLAC: type and body (an APPLICATION block's id included).
    func metadataBlocks(_ flac: [UInt8]) -> [(type: UInt8, body: [UInt8])] {
        var blocks: [(type: UInt8, body: [UInt8])] = []
        var at = 4
        while at + 4 <= flac.count {
            let length = Int(flac[at + 1]) << 16 | Int(flac[at + 2]) << 8 | Int(flac[at + 3])
            blocks.append((flac[at] & 0x7F, Array(flac[(at + 4)..<min(flac.count, at + 4 + length)])))
            if flac[at] & 0x80 != 0 { break }
            at += 4 + length
        }
        return blocks
    }

    /// The payloads of the APPLICATION blocks "riff", in order.
    func riffBlocks(_ flac: [UInt8]) -> [[UInt8]] {
        metadataBlocks(flac).filter { $0.type == 2 && $0.body.prefix(4) == ArraySlice("riff".utf8) }.map { Array($0.body.dropFirst(4)) }
    }

    @Test func eachWAVComesBackByteForByte() throws {
        for c in wavCases() {
            try inTemporaryDirectory { dir in
                let flac = try encodeWAV(c.wav, in: dir)
                var progressed: Int64 = 0
                let result = try decodeWAV(flac, to: dir + "/out.wav") { progressed += $0 }
                #expect(difference(read(dir + "/out.wav"), c.wav) == nil, "\(c.name)")
                #expect(result.sha256 == Digest.sha256(c.wav), "\(c.name)")
                #expect(result.bytes == Int64(c.wav.count), "\(c.name)")
                #expect(result.samples == UInt64(c.audio.count / c.format.frameBytes), "\(c.name)")
                #expect(progressed == Int64(read(flac).count), "\(c.name)")
                // The audio alone, as before, for callers that want the PCM.
                try decode(flac, c.format, to: dir + "/out.raw")
                #expect(difference(read(dir + "/out.raw"), c.audio) == nil, "\(c.name)")
            }
        }
    }

    @Test(.enabled(if: haveFlacTool, "\(flacTool) is not installed: no cross-check against the reference tool"))
    func theReferenceToolRestoresTheSameWAVAndStoresTheSameBlocks() throws {
        for c in wavCases() {
            try inTemporaryDirectory { dir in
                let flac = try encodeWAV(c.wav, in: dir)
                #expect(try runFlacTool(["-t", flac]) == 0, "\(c.name): flac -t")
                #expect(try runFlacTool(["-d", "--keep-foreign-metadata", "-o", dir + "/flac.wav", flac]) == 0, "\(c.name)")
                #expect(difference(read(dir + "/flac.wav"), c.wav) == nil, "\(c.name): flac -d --keep-foreign-metadata")

                // flac's own FLAC of the same WAV: the same "riff" blocks, in the same order after
                // the same VORBIS_COMMENT (flac adds a SEEKTABLE and a PADDING block, ceti neither).
                #expect(try runFlacTool(["--keep-foreign-metadata", "-o", dir + "/reference.flac", dir + "/in.wav"]) == 0)
                let ours = metadataBlocks(read(flac)).filter { $0.type == 2 || $0.type == 4 }
                let theirs = metadataBlocks(read(dir + "/reference.flac")).filter { $0.type == 2 || $0.type == 4 }
                #expect(ours.map(\.type) == theirs.map(\.type), "\(c.name)")
                #expect(ours.map(\.body) == theirs.map(\.body), "\(c.name)")
                #expect(riffBlocks(read(flac)).count == (c.name == "chunks" ? 6 : c.name == "odd8bit" ? 4 : 3))
                // And ceti rebuilds the WAV from flac's FLAC.
                try decodeWAV(dir + "/reference.flac", to: dir + "/ceti.wav")
                #expect(difference(read(dir + "/ceti.wav"), c.wav) == nil, "\(c.name): decodeWAV of flac's FLAC")
            }
        }
    }

    @Test func theFLACKeepsTheChannelMaskAsFlacDoes() throws {
        try inTemporaryDirectory { dir in
            let format = Self.wavFormat(4, 16, 48_000)
            let flac = try encodeWAV(riff([fmt(format, mask: 0x603), chunk("data", pcm(format, frames: 1000))]), in: dir)
            let comments = metadataBlocks(read(flac)).filter { $0.type == 4 }.map(\.body)
            try #require(comments.count == 1)
            #expect(String(decoding: comments[0], as: UTF8.self).hasSuffix("WAVEFORMATEXTENSIBLE_CHANNEL_MASK=0x0603"))
            // Without the comment, `flac -d` would write 4.0's usual mask (0x0033) instead.
            if Self.haveFlacTool {
                #expect(try runFlacTool(["-d", "--keep-foreign-metadata", "-o", dir + "/flac.wav", flac]) == 0)
                #expect(difference(read(dir + "/flac.wav"), read(dir + "/in.wav")) == nil)
            }
        }
    }

    /// RF64: sizes in the ds64 chunk, the data chunk's size 0xFFFFFFFF, as flac writes them.
    @Test func anRF64ComesBackByteForByte() throws {
        try inTemporaryDirectory { dir in
            let format = Self.wavFormat(2, 16, 44_100)
            let audio = pcm(format, frames: 5001, seed: 5)
            let format16 = fmt(format)
            let riffSize = 4 + 36 + format16.count + 8 + audio.count
            let ds64 = chunk("ds64", le(UInt64(riffSize), 8) + le(UInt64(audio.count), 8) + le(5001, 8) + le(0, 4))
            let wav =
                Array("RF64".utf8) + le(0xFFFF_FFFF, 4) + Array("WAVE".utf8) + ds64 + format16
                + Array("data".utf8) + le(0xFFFF_FFFF, 4) + audio
            let flac = try encodeWAV(wav, in: dir)
            try decodeWAV(flac, to: dir + "/out.rf64")
            #expect(difference(read(dir + "/out.rf64"), wav) == nil)
            if Self.haveFlacTool {
                // flac writes RF64 for an output named .rf64 (or with --force-rf64-format).
                #expect(try runFlacTool(["-d", "--keep-foreign-metadata", "-o", dir + "/flac.rf64", flac]) == 0)
                #expect(difference(read(dir + "/flac.rf64"), wav) == nil)
            }
        }
    }

    /// A header flac would not write (an 18-byte fmt chunk ending in cbSize 0, as WAVEFORMATEX
    /// writers leave it): `flac -d` 1.4.2 writes its own 16-byte one, ceti the stored one.
    @Test func aHeaderFlacWouldWriteDifferentlyComesBackAsStored() throws {
        try inTemporaryDirectory { dir in
            let format = Self.wavFormat(2, 24, 48_000)
            var body = Array(fmt(format).dropFirst(8))
            body += [0, 0]
            let wav = riff([chunk("fmt ", body), chunk("data", pcm(format, frames: 3000, seed: 6))])
            let flac = try encodeWAV(wav, in: dir)
            try decodeWAV(flac, to: dir + "/out.wav")
            #expect(difference(read(dir + "/out.wav"), wav) == nil)
        }
    }

    @Test func aFLACWithoutAWAVHeaderIsRefused() throws {
        try inTemporaryDirectory { dir in
            let flac = try encode(pcm(.tag, frames: 5000), .tag, in: dir)
            let error = #expect(throws: FLACDecoder.DecodeError.self) { try decodeWAV(flac, to: dir + "/out.wav") }
            guard case .noWAVHeader = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(error?.description.contains("holds no WAV header") == true)
            #expect(error?.description.contains("flac -d") == true)
            #expect(read(dir + "/out.wav").isEmpty)
        }
    }

    @Test func aDamagedWAVFLACFails() throws {
        try inTemporaryDirectory { dir in
            let c = wavCases()[2]
            let good = read(try encodeWAV(c.wav, in: dir))
            // In the audio, then cut inside the metadata and inside the audio.
            var bad = good
            bad[good.count * 2 / 3] ^= 0x10
            try write(bad, dir + "/bad.flac")
            let flipped = #expect(throws: FLACDecoder.DecodeError.self) { try decodeWAV(dir + "/bad.flac", to: dir + "/out.wav") }
            #expect(isDamage(flipped), "\(String(describing: flipped))")
            for cut in [60, audioStart(good) - 5, good.count * 3 / 5] {
                try write(Array(good.prefix(cut)), dir + "/cut.flac")
                let error = #expect(throws: FLACDecoder.DecodeError.self) { try decodeWAV(dir + "/cut.flac", to: dir + "/out.wav") }
                #expect(isDamage(error), "cut at \(cut): \(String(describing: error))")
            }
        }
    }

    /// The largest chunk a metadata block holds, kept; libFLAC and flac take it.
    @Test func aChunkOfTheLargestSizeIsKept() throws {
        let format = Self.wavFormat(2, 16, 48_000)
        let junk = chunk("JUNK", [UInt8](repeating: 0x4A, count: WAVHeader.maxChunk - 8))
        let wav = riff([fmt(format), junk, chunk("data", pcm(format, frames: 2000))])
        try inTemporaryDirectory { dir in
            let flac = try encodeWAV(wav, in: dir)
            #expect(riffBlocks(read(flac)).map(\.count) == [12, 24, WAVHeader.maxChunk, 8])
            try decodeWAV(flac, to: dir + "/out.wav")
            #expect(difference(read(dir + "/out.wav"), wav) == nil)
            if Self.haveFlacTool {
                #expect(try runFlacTool(["-d", "--keep-foreign-metadata", "-o", dir + "/flac.wav", flac]) == 0)
                #expect(difference(read(dir + "/flac.wav"), wav) == nil)
            }
        }
    }

    /// What ceti cannot keep whole is refused before anything is encoded (and the original kept).
    @Test func aWAVTheFLACCannotHoldWholeIsRefused() throws {
        let format = Self.wavFormat(1, 8, 8_000)
        let odd = pcm(format, frames: 101)
        let junk = chunk("JUNK", [UInt8](repeating: 0, count: 14 << 20))
        let cases: [(String, [UInt8], String)] = [
            ("big", riff([fmt(format), chunk("JUNK", [UInt8](repeating: 0, count: WAVHeader.maxChunk - 6)), chunk("data", odd)]), "JUNK"),
            ("much", riff([fmt(format), junk, junk, junk, junk, junk, chunk("data", odd)]), "64 MiB"),
            ("pad", riff([fmt(format), chunk("data", odd, pad: 7)]), "pad byte"),
            ("nopad", riff([fmt(format)]) + Array("data".utf8) + le(101, 4) + odd, "no pad byte"),
            ("stray", riff([fmt(format), chunk("data", odd)]) + [1, 2, 3], "not a chunk"),
            ("cut", riff([fmt(format), chunk("data", odd), chunk("LIST", [UInt8](repeating: 0, count: 40))]).dropLast(3), "past the end"),
        ]
        try inTemporaryDirectory { dir in
            for (name, wav, says) in cases {
                let error = #expect(throws: WAVHeader.WAVError.self, "\(name)") { try encodeWAV(wav, in: dir, name: name) }
                #expect(error?.description.contains(says) == true, "\(name): \(String(describing: error))")
                #expect(error?.description.contains("left untouched") == true, "\(name)")
            }
        }
    }
}
