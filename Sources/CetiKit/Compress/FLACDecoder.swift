import CFLAC
import Foundation

/// The inverse of FLACEncoder: libFLAC's stream decoder reading a FLAC from a file descriptor and
/// writing its PCM in a RawFormat's byte layout, or the whole WAV it was made from. It verifies as it decodes: every libFLAC error
/// is fatal, the sample count must equal STREAMINFO's, and libFLAC checks the stored MD5; the
/// SHA-256 of the bytes written is returned for comparison with the manifest. Blocking: run it on
/// a thread of our own. After a throw the output holds partial or wrong bytes: discard it.
enum FLACDecoder {
    struct Result {
        /// Samples per channel, as STREAMINFO counts them.
        var samples: UInt64
        /// Bytes written to the output.
        var bytes: Int64
        /// SHA-256 of the bytes written.
        var sha256: [UInt8]
    }

    enum DecodeError: Error, CustomStringConvertible {
        case notFLAC(path: String)
        case layoutMismatch(path: String, stream: String, expected: String)
        case noStoredMD5(path: String)
        case damaged(path: String, problem: String)
        case sampleCount(path: String, decoded: UInt64, stored: UInt64)
        case md5Mismatch(path: String)
        case read(path: String, message: String)
        case write(path: String, errno: Int32)
        case decoder(path: String, state: String)
        case noWAVHeader(path: String)

        var description: String {
            switch self {
            case .notFLAC(let path): return "\(path) is not a FLAC stream"
            case .layoutMismatch(let path, let stream, let expected):
                return "\(path) holds \(stream) audio, but the layout given is \(expected); not decoded"
            case .noStoredMD5(let path): return "\(path) has no stored MD5, so its audio cannot be verified; not decoded"
            case .damaged(let path, let problem): return "\(path) is damaged: \(problem)"
            case .sampleCount(let path, let decoded, let stored):
                return "\(path): decoded \(decoded) samples but STREAMINFO says \(stored) (the object is truncated or damaged)"
            case .md5Mismatch(let path): return "\(path): stored MD5 differs from the decoded audio (the object is damaged)"
            case .read(let path, let message): return "cannot read \(path): \(message)"
            case .write(let path, let e):
                return "cannot write \(path): \(String(cString: strerror(e)))" + (e == ENOSPC ? "; free some space and rerun" : "")
            case .decoder(let path, let state): return "libFLAC failed on \(path): \(state)"
            case .noWAVHeader(let path):
                return "\(path) holds no WAV header (made before ceti kept WAV headers, or not from a WAV); "
                    + "decode it with `flac -d`, which writes its audio in a new header"
            }
        }
    }

    /// Decodes the FLAC in `inputFD` (read with pread from offset 0; the fd's position is left
    /// alone and it is not closed) into `outputFD` at its current position. `progress` gets the
    /// FLAC bytes read, summing to the input's size.
    static func decode(
        inputFD: Int32, inputPath: String, format: RawFormat, outputFD: Int32, outputPath: String,
        progress: ((Int64) -> Void)? = nil
    ) throws -> Result {
        try checkMagic(inputFD, inputPath)
        let state = State(
            inputFD: inputFD, inputPath: inputPath, format: format, outputFD: outputFD, outputPath: outputPath,
            progress: progress)
        return try run(state, wav: nil)
    }

    /// Decodes the FLAC in `inputFD` as `decode` does, into the WAV it was made from: the chunks
    /// before the audio, the audio in the WAV's layout (little-endian; 8-bit unsigned, wider
    /// signed), the zero pad byte after audio of odd length, then the chunks after it — all from
    /// its APPLICATION blocks "riff" (`flac --keep-foreign-metadata` or ceti). Every stored byte
    /// is written as stored, so a WAV whose header is not the one flac would write comes back too:
    /// `flac -d` makes the RIFF header, fmt chunk and data chunk header again from STREAMINFO
    /// (1.4.2 keeps what it made; 1.4.3 and later refuse when it differs from what is stored).
    /// The result counts and hashes the whole WAV.
    static func decodeWAV(
        inputFD: Int32, inputPath: String, outputFD: Int32, outputPath: String, progress: ((Int64) -> Void)? = nil
    ) throws -> Result {
        try checkMagic(inputFD, inputPath)
        let wav = try StoredWAV(fd: inputFD, path: inputPath)
        let state = State(
            inputFD: inputFD, inputPath: inputPath, format: wav.format, outputFD: outputFD, outputPath: outputPath,
            progress: progress)
        return try run(state, wav: wav)
    }

    /// libFLAC would scan a non-FLAC file for a frame sync code, and raw PCM may well contain one.
    static func checkMagic(_ fd: Int32, _ path: String) throws {
        var magic = [UInt8](repeating: 0, count: 4)
        let got = try magic.withUnsafeMutableBytes { try read(fd, path, into: $0.baseAddress!, count: 4, at: 0) }
        guard got == 4, magic == Array("fLaC".utf8) else { throw DecodeError.notFLAC(path: path) }
    }

    /// Up to `count` bytes at `offset`; fewer only at the end of the file.
    static func read(_ fd: Int32, _ path: String, into dst: UnsafeMutableRawPointer, count: Int, at offset: Int64) throws(DecodeError)
        -> Int
    {
        do {
            return try FileIO.readFully(fd, path, UnsafeMutableRawBufferPointer(start: dst, count: count), count, at: offset)
        } catch let FileIOError.read(_, message) {
            throw .read(path: path, message: message)
        } catch {
            throw .read(path: path, message: "\(error)")
        }
    }

    static func truncatedMetadata(_ path: String) -> DecodeError {
        .damaged(path: path, problem: "it ends inside its metadata (truncated)")
    }

    /// The APPLICATION blocks "riff" of a FLAC, found by walking its metadata block headers (their
    /// bytes are copied from the file when written, never held), and the layout their fmt chunk gives.
    struct StoredWAV {
        /// Where a block's bytes (after the application id) are in the FLAC.
        struct Piece {
            var offset: Int64
            var count: Int
        }
        /// The RIFF header and the chunks up to the data chunk's header included.
        var head: [Piece] = []
        /// The chunks after the audio.
        var tail: [Piece] = []
        var format: RawFormat

        init(fd: Int32, path: String) throws {
            func bytes(_ offset: Int64, _ count: Int) throws -> [UInt8] {
                var out = [UInt8](repeating: 0, count: count)
                let got = try out.withUnsafeMutableBytes { try read(fd, path, into: $0.baseAddress!, count: count, at: offset) }
                guard got == count else { throw truncatedMetadata(path) }
                return out
            }
            func damaged(_ problem: String) -> DecodeError { .damaged(path: path, problem: "its stored WAV header \(problem)") }
            var pieces: [Piece] = []
            var at: Int64 = 4
            var last = false
            while !last {
                let header = try bytes(at, 4)
                last = header[0] & 0x80 != 0
                let length = Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
                if header[0] & 0x7F == 2, length >= 4, try bytes(at + 4, 4) == Array("riff".utf8) {
                    pieces.append(Piece(offset: at + 8, count: length - 4))
                }
                at += 4 + Int64(length)
            }
            guard let first = pieces.first else { throw DecodeError.noWAVHeader(path: path) }
            let riff = try bytes(first.offset, min(first.count, 12))
            guard riff.count == 12, ["RIFF", "RF64"].contains(String(decoding: riff[0..<4], as: UTF8.self)),
                String(decoding: riff[8..<12], as: UTF8.self) == "WAVE"
            else { throw damaged("does not begin with a RIFF/WAVE header") }
            head = [first]
            var stored: RawFormat?
            var audio = false
            for piece in pieces.dropFirst() {
                guard piece.count >= 8 else { throw damaged("has a piece too short for a chunk") }
                switch String(decoding: try bytes(piece.offset, 4), as: UTF8.self) {
                case "fmt " where stored == nil && !audio:
                    let chunk = try bytes(piece.offset, piece.count)
                    let size = Int(chunk[4]) | Int(chunk[5]) << 8 | Int(chunk[6]) << 16 | Int(chunk[7]) << 24
                    do {
                        stored = try WAVHeader.describe(fmt: chunk[8..<8 + min(size, chunk.count - 8)]).format
                    } catch {
                        throw damaged("says \(error.why)")
                    }
                case "fmt ": throw damaged("has a second fmt chunk, or one after the data chunk")
                case "data" where audio || stored == nil || piece.count != 8:
                    throw damaged("has a second data chunk, one before the fmt chunk, or one that is not 8 bytes")
                case "data":
                    audio = true
                    head.append(piece)
                    continue
                default: break
                }
                if audio { tail.append(piece) } else { head.append(piece) }
            }
            guard let stored, audio else { throw damaged("lacks its \(stored == nil ? "fmt" : "data") chunk") }
            format = stored
        }
    }

    /// Decodes, with the WAV's own bytes around the audio when `wav` is given.
    private static func run(_ state: State, wav: StoredWAV?) throws -> Result {
        let inputPath = state.inputPath
        let format = state.format
        guard let decoder = FLAC__stream_decoder_new() else { throw DecodeError.decoder(path: inputPath, state: "out of memory") }
        defer { FLAC__stream_decoder_delete(decoder) }
        FLAC__stream_decoder_set_md5_checking(decoder, 1)
        // No seek/tell/length callbacks: we never seek (a seek would switch MD5 checking off).
        // No eof callback either: a read of 0 bytes ends the stream.
        let client = Unmanaged.passUnretained(state).toOpaque()
        let status = FLAC__stream_decoder_init_stream(
            decoder, flacRead, nil, nil, nil, nil, flacWrite, flacMetadata, flacError, client)
        guard status == FLAC__STREAM_DECODER_INIT_STATUS_OK else {
            throw DecodeError.decoder(path: inputPath, state: "init status \(status.rawValue)")
        }

        // Metadata first, so that a wrong layout is refused before anything is written.
        // A stream that ends early makes libFLAC return false in END_OF_STREAM, with no error
        // callback when the cut falls between frames or in a header: the sample count reports it.
        let metadataOK = FLAC__stream_decoder_process_until_end_of_metadata(decoder)
        if let failure = state.failure { throw failure }
        guard metadataOK != 0 || endOfStream(decoder) else { throw DecodeError.decoder(path: inputPath, state: stateString(decoder)) }
        guard let info = state.streamInfo else {
            throw DecodeError.damaged(path: inputPath, problem: "it ends before its STREAMINFO (truncated)")
        }
        let stream = (channels: Int(info.channels), bits: Int(info.bits_per_sample), rate: Int(info.sample_rate))
        guard stream == (format.channels, format.bitsPerSample, format.sampleRate) else {
            let (streamText, expected) = (
                describe(stream.channels, stream.bits, stream.rate), describe(format.channels, format.bitsPerSample, format.sampleRate)
            )
            guard wav == nil else {
                throw DecodeError.damaged(path: inputPath, problem: "its stored WAV header says \(expected) but its audio is \(streamText)")
            }
            throw DecodeError.layoutMismatch(path: inputPath, stream: streamText, expected: expected)
        }
        // libFLAC quietly skips the MD5 check when the stored MD5 is all zeros.
        guard withUnsafeBytes(of: info.md5sum, { $0.contains { $0 != 0 } }) else {
            throw DecodeError.noStoredMD5(path: inputPath)
        }

        for piece in wav?.head ?? [] { state.copyInput(piece) }
        state.flush()
        if let failure = state.failure { throw failure }

        _ = FLAC__stream_decoder_process_until_end_of_stream(decoder)
        state.flush()
        if let failure = state.failure { throw failure }
        guard endOfStream(decoder) else { throw DecodeError.decoder(path: inputPath, state: stateString(decoder)) }
        if let wav {
            // As `flac -d`: a zero pad byte after audio of odd length (ceti encodes no other).
            if state.samples * UInt64(format.frameBytes) % 2 == 1 { state.copyInput(nil) }
            for piece in wav.tail { state.copyInput(piece) }
            state.flush()
            if let failure = state.failure { throw failure }
        }
        if info.total_samples != 0 && state.samples != info.total_samples {
            throw DecodeError.sampleCount(path: inputPath, decoded: state.samples, stored: info.total_samples)
        }
        // finish() is the only place libFLAC reports the MD5 comparison.
        guard FLAC__stream_decoder_finish(decoder) != 0 else { throw DecodeError.md5Mismatch(path: inputPath) }
        guard let sha = state.sha.take() else { throw DecodeError.decoder(path: inputPath, state: "digest already taken") }
        return Result(samples: state.samples, bytes: state.bytesWritten, sha256: sha.finalize())
    }

    static func describe(_ channels: Int, _ bits: Int, _ rate: Int) -> String {
        "\(channels)-channel \(bits)-bit \(rate) Hz"
    }

    /// What a libFLAC decoder error means, for the operator.
    static func describe(_ status: FLAC__StreamDecoderErrorStatus) -> String {
        switch status {
        case FLAC__STREAM_DECODER_ERROR_STATUS_LOST_SYNC: return "lost sync (bytes that are not a FLAC frame)"
        case FLAC__STREAM_DECODER_ERROR_STATUS_BAD_HEADER: return "a corrupt frame header"
        case FLAC__STREAM_DECODER_ERROR_STATUS_FRAME_CRC_MISMATCH: return "a frame fails its CRC"
        case FLAC__STREAM_DECODER_ERROR_STATUS_UNPARSEABLE_STREAM: return "a frame libFLAC cannot parse"
        case FLAC__STREAM_DECODER_ERROR_STATUS_BAD_METADATA: return "corrupt metadata"
        default: return "libFLAC error \(status.rawValue)"
        }
    }

    static func endOfStream(_ decoder: UnsafeMutablePointer<FLAC__StreamDecoder>) -> Bool {
        FLAC__stream_decoder_get_state(decoder) == FLAC__STREAM_DECODER_END_OF_STREAM
    }

    static func stateString(_ decoder: UnsafeMutablePointer<FLAC__StreamDecoder>) -> String {
        guard let text = FLAC__stream_decoder_get_resolved_state_string(decoder) else { return "unknown state" }
        return String(cString: text)
    }

    /// State the C callbacks reach through client_data.
    final class State {
        let inputFD: Int32
        let inputPath: String
        let format: RawFormat
        let outputFD: Int32
        let outputPath: String
        let progress: ((Int64) -> Void)?
        var inputOffset: Int64 = 0
        /// Whole sample frames, about 1 MiB.
        let capacity: Int
        let buffer: UnsafeMutablePointer<UInt8>
        var fill = 0
        var sha: Digest? = Digest(.sha256)
        var bytesWritten: Int64 = 0
        var samples: UInt64 = 0
        var streamInfo: FLAC__StreamMetadata_StreamInfo?
        /// The first problem; every callback after it aborts.
        var failure: DecodeError?

        init(
            inputFD: Int32, inputPath: String, format: RawFormat, outputFD: Int32, outputPath: String,
            progress: ((Int64) -> Void)?
        ) {
            self.inputFD = inputFD
            self.inputPath = inputPath
            self.format = format
            self.outputFD = outputFD
            self.outputPath = outputPath
            self.progress = progress
            capacity = max(1, (1 << 20) / format.frameBytes) * format.frameBytes
            buffer = .allocate(capacity: capacity)
        }

        deinit { buffer.deallocate() }

        /// Up to `count` bytes at `offset`; fewer only at the end of the file, nil on an error.
        func read(into dst: UnsafeMutableRawPointer, count: Int, at offset: Int64) -> Int? {
            do {
                return try FLACDecoder.read(inputFD, inputPath, into: dst, count: count, at: offset)
            } catch {
                failure = failure ?? error
                return nil
            }
        }

        /// Writes a stored piece of the WAV (copied from the FLAC through the buffer), or one zero byte for nil.
        func copyInput(_ piece: StoredWAV.Piece?) {
            let count = piece?.count ?? 1
            var done = 0
            while done < count, failure == nil {
                if fill == capacity {
                    flush()
                    continue
                }
                let n = min(count - done, capacity - fill)
                if let piece {
                    guard let got = read(into: buffer + fill, count: n, at: piece.offset + Int64(done)) else { return }
                    guard got == n else {
                        failure = truncatedMetadata(inputPath)
                        return
                    }
                } else {
                    buffer[fill] = 0
                }
                fill += n
                done += n
            }
        }

        func flush() {
            guard failure == nil, fill > 0 else { return }
            var done = 0
            while done < fill {
                let n = write(outputFD, buffer + done, fill - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = .write(path: outputPath, errno: errno)
                    return
                }
                done += n
            }
            sha?.update(UnsafeRawBufferPointer(start: buffer, count: fill))
            bytesWritten += Int64(fill)
            fill = 0
        }

        /// Interleaves one decoded frame into the buffer in `format`'s byte layout.
        func append(_ header: FLAC__FrameHeader, _ planes: UnsafePointer<UnsafePointer<FLAC__int32>?>) -> Bool {
            let channels = Int(header.channels)
            let blocksize = Int(header.blocksize)
            guard channels == format.channels, Int(header.bits_per_sample) == format.bitsPerSample else {
                failure = .damaged(
                    path: inputPath,
                    problem: "the frame at sample \(samples) is \(channels)-channel \(header.bits_per_sample)-bit, unlike STREAMINFO")
                return false
            }
            var source: [UnsafePointer<FLAC__int32>] = []
            for c in 0..<channels {
                guard let plane = planes[c] else {
                    failure = .decoder(path: inputPath, state: "no samples for channel \(c)")
                    return false
                }
                source.append(plane)
            }
            let width = format.bytesPerSample
            let big = format.bigEndian
            // Unsigned is the sample plus 2^(bits-1), as `flac --sign=unsigned` writes it.
            let bias: UInt32 = format.signed ? 0 : 1 << UInt32(format.bitsPerSample - 1)
            var i = 0
            while i < blocksize {
                if capacity - fill < format.frameBytes {
                    flush()
                    if failure != nil { return false }
                }
                let n = min(blocksize - i, (capacity - fill) / format.frameBytes)
                var o = fill
                for s in i..<(i + n) {
                    for plane in source {
                        let u = UInt32(bitPattern: plane[s]) &+ bias
                        for b in 0..<width {
                            buffer[o &+ (big ? width &- 1 &- b : b)] = UInt8(truncatingIfNeeded: u >> UInt32(8 &* b))
                        }
                        o &+= width
                    }
                }
                fill = o
                i += n
            }
            samples += UInt64(blocksize)
            return true
        }
    }
}

private func decoderState(_ client: UnsafeMutableRawPointer?) -> FLACDecoder.State? {
    client.map { Unmanaged<FLACDecoder.State>.fromOpaque($0).takeUnretainedValue() }
}

private let flacRead: FLAC__StreamDecoderReadCallback = { _, buffer, bytes, client in
    guard let s = decoderState(client), let buffer, let bytes, s.failure == nil else { return FLAC__STREAM_DECODER_READ_STATUS_ABORT }
    guard let got = s.read(into: buffer, count: bytes.pointee, at: s.inputOffset) else {
        return FLAC__STREAM_DECODER_READ_STATUS_ABORT
    }
    bytes.pointee = got
    s.inputOffset += Int64(got)
    if got > 0 { s.progress?(Int64(got)) }
    return got == 0 ? FLAC__STREAM_DECODER_READ_STATUS_END_OF_STREAM : FLAC__STREAM_DECODER_READ_STATUS_CONTINUE
}

private let flacWrite: FLAC__StreamDecoderWriteCallback = { _, frame, planes, client in
    guard let s = decoderState(client), let frame, let planes, s.failure == nil, s.append(frame.pointee.header, planes) else {
        return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT
    }
    return FLAC__STREAM_DECODER_WRITE_STATUS_CONTINUE
}

private let flacMetadata: FLAC__StreamDecoderMetadataCallback = { _, metadata, client in
    guard let s = decoderState(client), let m = metadata, m.pointee.type == FLAC__METADATA_TYPE_STREAMINFO else { return }
    s.streamInfo = m.pointee.data.stream_info
}

/// libFLAC carries on after an error (it drops the bad frame and pads the gap with silence), and
/// this callback cannot stop it: the failure is noted and the next read or write aborts.
private let flacError: FLAC__StreamDecoderErrorCallback = { _, status, client in
    guard let s = decoderState(client), s.failure == nil else { return }
    s.failure = .damaged(path: s.inputPath, problem: "\(FLACDecoder.describe(status)) after sample \(s.samples)")
}
