import Foundation
import Testing

@testable import CetiKit

/// FLACs for the tests, made as `ceti compress` makes them: ceti's FLACEncoder at level 5 (4096-sample
/// blocks), a WAV's chunks other than the audio kept as APPLICATION blocks "riff".
enum TestFLAC {
    /// Writes `input` (raw PCM in `format`, or a whole WAV when `format` is nil) to `dir`, encodes it
    /// and returns the FLAC's path.
    static func encode(_ input: [UInt8], format: RawFormat?, in dir: String) throws -> String {
        let (inPath, flacPath) = (dir + (format == nil ? "/in.wav" : "/in.raw"), dir + "/in.flac")
        try Data(input).write(to: URL(fileURLWithPath: inPath))
        let fd = open(inPath, O_RDONLY)
        let output = open(flacPath, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        try #require(fd >= 0 && output >= 0)
        defer {
            close(fd)
            close(output)
        }
        let size = Int64(input.count)
        if let format {
            _ = try FLACEncoder.encode(
                inputFD: fd, inputPath: inPath, inputSize: size, pcmOffset: 0, pcmLength: size, format: format, level: 5,
                outputFD: output, outputPath: flacPath)
        } else {
            let wav = try WAVHeader.parse(fd: fd, path: inPath, fileSize: size)
            _ = try FLACEncoder.encode(
                inputFD: fd, inputPath: inPath, inputSize: size, pcmOffset: wav.dataOffset, pcmLength: wav.dataLength,
                format: wav.format, level: 5, outputFD: output, outputPath: flacPath, foreign: wav.foreign)
        }
        return flacPath
    }
}
