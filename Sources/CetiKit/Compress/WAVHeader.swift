import Foundation

/// Where the PCM of a WAV file is and how it is laid out (RIFF/WAVE, PCM or
/// WAVE_FORMAT_EXTENSIBLE holding PCM).
struct WAVHeader {
    var format: RawFormat
    var dataOffset: Int64
    var dataLength: Int64

    enum WAVError: Error, CustomStringConvertible {
        case malformed(path: String, why: String)
        var description: String {
            switch self {
            case .malformed(let path, let why): return "\(path) is not a WAV file ceti can read: \(why); left untouched"
            }
        }
    }

    static func parse(fd: Int32, path: String, fileSize: Int64) throws -> WAVHeader {
        func bad(_ why: String) -> WAVError { .malformed(path: path, why: why) }
        let headLength = Int(min(fileSize, 1 << 16))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(headLength, 12), alignment: 8)
        defer { buffer.deallocate() }
        let got = try FileIO.readFully(fd, path, buffer, headLength, at: 0)
        let b = UnsafeRawBufferPointer(rebasing: buffer[0..<got])
        func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u32(_ o: Int) -> Int64 { Int64(u16(o)) | Int64(u16(o + 2)) << 16 }
        func tag(_ o: Int) -> String { String(decoding: b[o..<o + 4], as: UTF8.self) }
        guard got >= 12, tag(0) == "RIFF", tag(8) == "WAVE" else { throw bad("no RIFF/WAVE header") }
        var o = 12
        var format: RawFormat?
        while o + 8 <= got {
            let id = tag(o)
            let size = u32(o + 4)
            let body = o + 8
            if id == "fmt " {
                guard size >= 16, body + 16 <= got else { throw bad("its fmt chunk is short") }
                var code = u16(body)
                let channels = u16(body + 2)
                let rate = Int(u32(body + 4))
                let bits = u16(body + 14)
                if code == 0xFFFE, size >= 40, body + 26 <= got { code = u16(body + 24) }  // the sub-format GUID's first bytes
                guard code == 1 else { throw bad("its audio is not PCM (format \(code))") }
                // WAV stores 8-bit samples unsigned and wider ones signed, always little-endian.
                format = RawFormat(channels: channels, bitsPerSample: bits, sampleRate: rate, bigEndian: false, signed: bits > 8)
            } else if id == "data" {
                guard let format else { throw bad("its data chunk comes before the fmt chunk") }
                if let problem = format.problem { throw bad(problem) }
                // Streaming writers leave the size 0 or 0xFFFFFFFF: the audio then runs to the end of the file.
                let available = fileSize - Int64(body)
                let length = size == 0 || size == 0xFFFF_FFFF || size > available ? available : size
                return WAVHeader(format: format, dataOffset: Int64(body), dataLength: length)
            }
            o = body + Int(size) + Int(size & 1)
        }
        throw bad("no data chunk in its first 64 KiB")
    }
}
