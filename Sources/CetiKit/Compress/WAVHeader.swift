import Foundation

/// Where the PCM of a WAV file is, how it is laid out (PCM or WAVE_FORMAT_EXTENSIBLE holding PCM),
/// and every other byte of the file, cut into pieces as flac 1.4's `--keep-foreign-metadata` cuts
/// them (src/flac/foreign_metadata.c), so that the FLAC holds the whole WAV. RIFF/WAVE, and RF64
/// (the 64-bit WAV: `RF64` header, sizes in a `ds64` chunk that must come first, as flac wants).
struct WAVHeader {
    var format: RawFormat
    var dataOffset: Int64
    var dataLength: Int64
    var foreign: Foreign

    /// The bytes of a WAV that are not its audio, one piece per APPLICATION block "riff" of the
    /// FLAC, in file order. With the audio and its pad byte they tile the file exactly, so the
    /// SHA-256 of the input is made of the very bytes stored.
    struct Foreign: Sendable, Equatable {
        /// The 12-byte RIFF (or RF64) header, each chunk before the audio whole (header, body and
        /// pad byte), then the data chunk's 8-byte header: the file up to `dataOffset`.
        var head: [[UInt8]]
        /// Each chunk after the audio (and the data chunk's pad byte), whole, to the end of the file.
        var tail: [[UInt8]]
        /// The channel mask flac keeps in a WAVEFORMATEXTENSIBLE_CHANNEL_MASK comment (for a
        /// WAVE_FORMAT_EXTENSIBLE fmt chunk only); `flac -d` needs it to write the same fmt chunk.
        var channelMask: UInt32?
    }

    /// The largest piece one APPLICATION block takes. The format's 24-bit length would allow
    /// 2^24 - 1 - 4 bytes (flac 1.4.3 checks that), but libFLAC's bit writer holds at most 16 MiB
    /// for a block, its 4-byte header and 4-byte id included (bitwriter.c, bitwriter_grow_).
    static let maxChunk = (1 << 24) - 8
    /// What ceti holds in memory for one WAV's chunks (flac has no such limit): several files are
    /// encoded at once, and recorders write kilobytes here.
    static let maxForeign = 64 << 20

    enum WAVError: Error, CustomStringConvertible {
        case malformed(path: String, why: String)
        case chunkTooLarge(path: String, chunk: String, size: Int64)
        case tooMuchMetadata(path: String)

        var description: String {
            switch self {
            case .malformed(let path, let why): return "\(path) is not a WAV file ceti can read: \(why); left untouched"
            case .chunkTooLarge(let path, let chunk, let size):
                return "\(path): its \"\(chunk)\" chunk is \(size) bytes, more than a FLAC metadata block holds "
                    + "(\(maxChunk) bytes), so the FLAC could not give back the WAV byte for byte; left untouched"
            case .tooMuchMetadata(let path):
                return "\(path) holds more than \(maxForeign >> 20) MiB besides its audio, more than ceti keeps in a FLAC; left untouched"
            }
        }
    }

    /// Why a fmt chunk describes no audio ceti encodes.
    struct Unreadable: Error { var why: String }

    /// The PCM layout a fmt chunk's body (its declared size, without the pad byte) describes, and
    /// the channel mask flac records for it.
    static func describe(fmt b: ArraySlice<UInt8>) throws(Unreadable) -> (format: RawFormat, channelMask: UInt32?) {
        let base = b.startIndex
        func u16(_ o: Int) -> Int { Int(b[base + o]) | Int(b[base + o + 1]) << 8 }
        func u32(_ o: Int) -> UInt32 { UInt32(u16(o)) | UInt32(u16(o + 2)) << 16 }
        guard b.count >= 16 else { throw Unreadable(why: "its fmt chunk is short") }
        let channels = u16(2)
        let bits = u16(14)
        var code = u16(0)
        var mask: UInt32?
        if code == 0xFFFE, b.count >= 40 {
            code = u16(24)  // the sub-format GUID's first bytes
            // As flac's encode.c: a mono or stereo file without a mask gets the usual one.
            let given = u32(20)
            let usual: UInt32 = channels == 1 ? 0x4 : channels == 2 ? 0x3 : 0
            mask = given != 0 ? given : usual != 0 ? usual : nil
        }
        guard code == 1 else { throw Unreadable(why: "its audio is not PCM (format \(code))") }
        // WAV stores 8-bit samples unsigned and wider ones signed, always little-endian.
        let format = RawFormat(channels: channels, bitsPerSample: bits, sampleRate: Int(u32(4)), bigEndian: false, signed: bits > 8)
        if let problem = format.problem { throw Unreadable(why: problem) }
        return (format, mask)
    }

    /// Walks every chunk of the file with pread (never reading the audio), keeping all but the audio.
    static func parse(fd: Int32, path: String, fileSize: Int64) throws -> WAVHeader {
        func bad(_ why: String) -> WAVError { .malformed(path: path, why: why) }
        func read(_ offset: Int64, _ count: Int) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: count)
            let got = try out.withUnsafeMutableBytes { try FileIO.readFully(fd, path, $0, count, at: offset) }
            guard got == count else { throw bad("it shrank while being read") }
            return out
        }
        func tag(_ b: [UInt8], _ o: Int) -> String { String(decoding: b[o..<o + 4], as: UTF8.self) }
        func uint(_ b: [UInt8], _ o: Int, _ count: Int) -> UInt64 { (0..<count).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * $1) } }

        guard fileSize >= 12 else { throw bad("no RIFF/WAVE header") }
        let riff = try read(0, 12)
        let rf64 = tag(riff, 0) == "RF64"
        guard tag(riff, 0) == "RIFF" || rf64, tag(riff, 8) == "WAVE" else { throw bad("no RIFF/WAVE header") }
        var foreign = Foreign(head: [riff], tail: [])
        var kept = 12
        var format: RawFormat?
        var data: (offset: Int64, length: Int64)?
        var ds64DataSize: Int64?
        var o: Int64 = 12
        while o < fileSize {
            guard fileSize - o >= 8 else { throw bad("its last \(fileSize - o) bytes are not a chunk") }
            let header = try read(o, 8)
            let id = tag(header, 0)
            let size = Int64(uint(header, 4, 4))
            if rf64 && o == 12 && id != "ds64" { throw bad("its first chunk is not the ds64 chunk RF64 needs") }
            if id == "data" {
                guard data == nil else { throw bad("it has two data chunks") }
                guard format != nil else { throw bad("its data chunk comes before the fmt chunk") }
                let body = o + 8
                let available = fileSize - body
                var length = rf64 && size == 0xFFFF_FFFF ? ds64DataSize ?? 0 : size
                // Streaming writers leave the size 0 or 0xFFFFFFFF: the audio then runs to the end of the file.
                if length == 0 || length == 0xFFFF_FFFF || length > available { length = available }
                foreign.head.append(header)
                data = (body, length)
                o = body + length
                // flac stores no pad byte: it writes a zero one after audio of odd length.
                if length % 2 == 1 {
                    guard o < fileSize else { throw bad("its data chunk has an odd length and no pad byte after it") }
                    guard try read(o, 1) == [0] else { throw bad("the pad byte after its data chunk is not zero") }
                    o += 1
                }
                continue
            }
            let whole = 8 + size + size % 2
            guard whole <= maxChunk else { throw WAVError.chunkTooLarge(path: path, chunk: id, size: whole) }
            guard whole <= fileSize - o else { throw bad("its \"\(id)\" chunk runs past the end of the file") }
            kept += Int(whole)
            guard kept <= maxForeign else { throw WAVError.tooMuchMetadata(path: path) }
            let chunk = try read(o, Int(whole))
            if id == "fmt " {
                guard format == nil, data == nil else { throw bad("it has a second fmt chunk") }
                do {
                    (format, foreign.channelMask) = try describe(fmt: chunk[8..<8 + Int(size)])
                } catch {
                    throw bad(error.why)
                }
            } else if id == "ds64" && rf64 && o == 12 {
                guard size >= 28 else { throw bad("its ds64 chunk is short") }
                ds64DataSize = Int64(clamping: uint(chunk, 16, 8))
            }
            if data == nil { foreign.head.append(chunk) } else { foreign.tail.append(chunk) }
            o += whole
        }
        guard let format, let data else { throw bad(format == nil ? "no fmt chunk" : "no data chunk") }
        return WAVHeader(format: format, dataOffset: data.offset, dataLength: data.length, foreign: foreign)
    }
}
