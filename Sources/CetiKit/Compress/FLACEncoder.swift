import CFLAC
import Foundation

/// libFLAC's stream encoder writing to a file descriptor, with its verify mode on (every frame is
/// decoded again as it is written) and our own MD5 of the PCM to compare with the STREAMINFO MD5
/// it stores. Blocking: run it on a thread of our own. libFLAC 1.4 has no threads of its own,
/// so ceti runs several files at once instead.
struct FLACEncoder {
    struct Result {
        /// SHA-256 of the whole input file (header included, for WAV).
        var inputSHA256: [UInt8]
        /// MD5 of the PCM as FLAC defines it (signed little-endian samples), computed while reading.
        var pcmMD5: [UInt8]
        /// The MD5 libFLAC stored in STREAMINFO.
        var streamMD5: [UInt8]
        var samples: UInt64
    }

    enum EncodeError: Error, CustomStringConvertible {
        case notWholeFrames(path: String, size: Int64, frameBytes: Int, format: String)
        case empty(path: String)
        case encoder(path: String, state: String)
        case md5Mismatch(path: String)

        var description: String {
            switch self {
            case .notWholeFrames(let path, let size, let frame, let format):
                return "\(path): \(size) bytes is not a whole number of \(frame)-byte frames for \(format); "
                    + "is it a truncated recording, or are --channels/--bps wrong? Left untouched"
            case .empty(let path): return "\(path) holds no audio; left untouched"
            case .encoder(let path, let state): return "libFLAC failed on \(path): \(state)"
            case .md5Mismatch(let path):
                return "\(path): the FLAC's stored MD5 differs from the MD5 of the audio read; output discarded, original kept"
            }
        }
    }

    /// State the C callbacks reach through client_data.
    final class Sink {
        let fd: Int32
        var writeErrno: Int32 = 0
        var streamMD5: [UInt8] = []
        init(fd: Int32) { self.fd = fd }
    }

    /// Encodes `length` bytes of PCM at `offset` of `inputFD` into `outputFD`. A WAV's `foreign`
    /// bytes (every byte but the audio) go into APPLICATION blocks "riff" after the VORBIS_COMMENT,
    /// as `flac --keep-foreign-metadata` writes them, and are hashed from there: they are what is
    /// stored. `analyzer` (recording QC) is fed every sample as it is encoded. No PADDING block (flac adds 8 KiB for tag editing; ceti's FLACs are never edited).
    static func encode(
        inputFD: Int32, inputPath: String, inputSize: Int64, pcmOffset: Int64, pcmLength: Int64,
        format: RawFormat, level: Int, outputFD: Int32, outputPath: String, foreign: WAVHeader.Foreign? = nil,
        analyzer: AudioAnalyzer? = nil, progress: ((Int64) -> Void)? = nil
    ) throws -> Result {
        guard pcmLength > 0 else { throw EncodeError.empty(path: inputPath) }
        guard pcmLength % Int64(format.frameBytes) == 0 else {
            throw EncodeError.notWholeFrames(path: inputPath, size: pcmLength, frameBytes: format.frameBytes, format: format.flacFlags)
        }
        // The pieces, the audio and its pad byte must be the whole file, or a byte would be lost.
        let pad = foreign != nil && pcmLength % 2 == 1 ? [UInt8(0)] : []
        if let foreign {
            let head = foreign.head.reduce(0) { $0 + Int64($1.count) }
            let tail = foreign.tail.reduce(0) { $0 + Int64($1.count) }
            guard head == pcmOffset, head + pcmLength + Int64(pad.count) + tail == inputSize else {
                throw EncodeError.encoder(path: inputPath, state: "its WAV chunks do not cover the file")
            }
        }
        guard let encoder = FLAC__stream_encoder_new() else { throw EncodeError.encoder(path: inputPath, state: "out of memory") }
        defer { FLAC__stream_encoder_delete(encoder) }
        // Read by libFLAC in init; kept until the encoder is gone.
        let blocks = foreign.map(MetadataBlocks.init)
        if let blocks {
            guard FLAC__stream_encoder_set_metadata(encoder, blocks.list, UInt32(blocks.count)) != 0 else {
                throw EncodeError.encoder(path: inputPath, state: "metadata refused")
            }
        }
        let frames = UInt64(pcmLength) / UInt64(format.frameBytes)
        FLAC__stream_encoder_set_verify(encoder, 1)
        FLAC__stream_encoder_set_channels(encoder, UInt32(format.channels))
        FLAC__stream_encoder_set_bits_per_sample(encoder, UInt32(format.bitsPerSample))
        FLAC__stream_encoder_set_sample_rate(encoder, UInt32(format.sampleRate))
        FLAC__stream_encoder_set_compression_level(encoder, UInt32(level))
        FLAC__stream_encoder_set_total_samples_estimate(encoder, frames)

        let sink = Sink(fd: outputFD)
        let client = Unmanaged.passUnretained(sink).toOpaque()
        let status = FLAC__stream_encoder_init_stream(encoder, flacWrite, flacSeek, flacTell, flacMetadata, client)
        guard status == FLAC__STREAM_ENCODER_INIT_STATUS_OK else {
            throw EncodeError.encoder(path: inputPath, state: "init status \(status.rawValue)")
        }
        var sha = Digest(.sha256)
        var md5 = Digest(.md5)
        // Whole frames per read, about 1 MiB.
        let chunk = max(1, (1 << 20) / format.frameBytes) * format.frameBytes
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { raw.deallocate() }
        var samples = [Int32](repeating: 0, count: chunk / format.bytesPerSample)
        var le = [UInt8](repeating: 0, count: chunk)

        func fail(_ e: Error) -> Error {
            FLAC__stream_encoder_finish(encoder)
            return sink.writeErrno != 0 ? FileIOError.write(path: outputPath, errno: sink.writeErrno) : e
        }
        // The header (WAV) is part of the input's hash but not of the audio.
        if let foreign {
            for piece in foreign.head { sha.update(piece) }
        } else if pcmOffset > 0 {
            try FileHashes.hash(&sha, fd: inputFD, path: inputPath, offset: 0, length: pcmOffset)
        }
        var done: Int64 = 0
        while done < pcmLength {
            let want = Int(min(Int64(chunk), pcmLength - done))
            let got = try FileIO.readFully(inputFD, inputPath, raw, want, at: pcmOffset + done)
            guard got == want else { throw fail(FileIOError.read(path: inputPath, message: "it shrank while being read")) }
            let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<want])
            sha.update(bytes)
            let count = want / format.bytesPerSample
            PCM.decode(bytes, format: format, into: &samples, littleEndian: &le)
            le.withUnsafeBytes { md5.update(UnsafeRawBufferPointer(rebasing: $0[0..<want])) }
            let ok = samples.withUnsafeBufferPointer {
                // QC sees the very samples libFLAC is given: no second read of the audio.
                analyzer?.feed(interleaved: UnsafeBufferPointer(rebasing: $0[0..<count]))
                return FLAC__stream_encoder_process_interleaved(encoder, $0.baseAddress, UInt32(count / format.channels))
            }
            guard ok != 0 else { throw fail(EncodeError.encoder(path: inputPath, state: stateString(encoder))) }
            done += Int64(want)
            progress?(Int64(want))
        }
        if let foreign {
            sha.update(pad)
            for piece in foreign.tail { sha.update(piece) }
        } else if pcmOffset + pcmLength < inputSize {
            try FileHashes.hash(
                &sha, fd: inputFD, path: inputPath, offset: pcmOffset + pcmLength,
                length: inputSize - pcmOffset - pcmLength)
        }
        // finish() flushes, runs the last verify and rewrites STREAMINFO (with the MD5) in place.
        guard FLAC__stream_encoder_finish(encoder) != 0 else {
            if sink.writeErrno != 0 { throw FileIOError.write(path: outputPath, errno: sink.writeErrno) }
            throw EncodeError.encoder(path: inputPath, state: stateString(encoder))
        }
        let pcmMD5 = md5.finalize()
        guard sink.streamMD5 == pcmMD5 else { throw EncodeError.md5Mismatch(path: inputPath) }
        return Result(inputSHA256: sha.finalize(), pcmMD5: pcmMD5, streamMD5: sink.streamMD5, samples: frames)
    }

    static func stateString(_ encoder: UnsafeMutablePointer<FLAC__StreamEncoder>) -> String {
        // The resolved string names the verify decoder's state too when verification failed.
        guard let text = FLAC__stream_encoder_get_resolved_state_string(encoder) else { return "unknown state" }
        return String(cString: text)
    }

    /// The metadata blocks `flac --keep-foreign-metadata` writes for a WAV, in its order: a
    /// VORBIS_COMMENT with the channel mask when the fmt chunk has one (otherwise libFLAC writes
    /// its empty one there), then one APPLICATION block "riff" per piece, in file order. The
    /// structs and bytes are ours (libFLAC's metadata object API is not in CFLAC's shim).
    final class MetadataBlocks {
        let list: UnsafeMutablePointer<UnsafeMutablePointer<FLAC__StreamMetadata>?>
        let count: Int
        private let blocks: UnsafeMutablePointer<FLAC__StreamMetadata>
        private let entry = UnsafeMutablePointer<FLAC__StreamMetadata_VorbisComment_Entry>.allocate(capacity: 1)
        private var owned: [UnsafeMutableRawBufferPointer] = []

        init(_ foreign: WAVHeader.Foreign) {
            // As flac's utils.c writes it.
            let comment = foreign.channelMask.map { Array(String(format: "WAVEFORMATEXTENSIBLE_CHANNEL_MASK=0x%04X", $0).utf8) }
            let pieces = foreign.head + foreign.tail
            count = pieces.count + (comment == nil ? 0 : 1)
            blocks = .allocate(capacity: count)
            blocks.initialize(repeating: FLAC__StreamMetadata(), count: count)
            list = .allocate(capacity: count)
            var next = 0
            if let comment {
                entry.initialize(to: FLAC__StreamMetadata_VorbisComment_Entry(length: UInt32(comment.count), entry: copy(comment)))
                blocks[0].type = FLAC__METADATA_TYPE_VORBIS_COMMENT
                // Vendor length, (empty) vendor, comment count, then each comment's length and text;
                // libFLAC puts its own vendor string in.
                blocks[0].length = UInt32(4 + 4 + 4 + comment.count)
                blocks[0].data.vorbis_comment.num_comments = 1
                blocks[0].data.vorbis_comment.comments = entry
                next = 1
            }
            for piece in pieces {
                blocks[next].type = FLAC__METADATA_TYPE_APPLICATION
                blocks[next].length = UInt32(4 + piece.count)
                blocks[next].data.application.id = (0x72, 0x69, 0x66, 0x66)  // "riff"
                blocks[next].data.application.data = copy(piece)
                next += 1
            }
            for i in 0..<count { list[i] = blocks + i }
        }

        private func copy(_ bytes: [UInt8]) -> UnsafeMutablePointer<UInt8> {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 1)
            buffer.copyBytes(from: bytes)
            owned.append(buffer)
            return buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        }

        deinit {
            for buffer in owned { buffer.deallocate() }
            blocks.deinitialize(count: count)
            blocks.deallocate()
            list.deallocate()
            entry.deallocate()
        }
    }
}

private let flacWrite: FLAC__StreamEncoderWriteCallback = { _, buffer, bytes, _, _, client in
    let sink = Unmanaged<FLACEncoder.Sink>.fromOpaque(client!).takeUnretainedValue()
    var done = 0
    while done < bytes {
        let n = write(sink.fd, buffer! + done, bytes - done)
        if n < 0 {
            if errno == EINTR { continue }
            sink.writeErrno = errno
            return FLAC__STREAM_ENCODER_WRITE_STATUS_FATAL_ERROR
        }
        done += n
    }
    return FLAC__STREAM_ENCODER_WRITE_STATUS_OK
}

private let flacSeek: FLAC__StreamEncoderSeekCallback = { _, offset, client in
    let sink = Unmanaged<FLACEncoder.Sink>.fromOpaque(client!).takeUnretainedValue()
    return lseek(sink.fd, off_t(offset), SEEK_SET) < 0 ? FLAC__STREAM_ENCODER_SEEK_STATUS_ERROR : FLAC__STREAM_ENCODER_SEEK_STATUS_OK
}

private let flacTell: FLAC__StreamEncoderTellCallback = { _, offset, client in
    let sink = Unmanaged<FLACEncoder.Sink>.fromOpaque(client!).takeUnretainedValue()
    let pos = lseek(sink.fd, 0, SEEK_CUR)
    guard pos >= 0 else { return FLAC__STREAM_ENCODER_TELL_STATUS_ERROR }
    offset!.pointee = UInt64(pos)
    return FLAC__STREAM_ENCODER_TELL_STATUS_OK
}

private let flacMetadata: FLAC__StreamEncoderMetadataCallback = { _, metadata, client in
    let sink = Unmanaged<FLACEncoder.Sink>.fromOpaque(client!).takeUnretainedValue()
    guard let m = metadata, m.pointee.type == FLAC__METADATA_TYPE_STREAMINFO else { return }
    sink.streamMD5 = withUnsafeBytes(of: m.pointee.data.stream_info.md5sum) { Array($0) }
}
