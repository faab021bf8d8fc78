import CFLAC
import Foundation

/// QC of a FLAC stream fed in chunks cut anywhere, as it arrives (over SFTP, in the pass that
/// already reads it): libFLAC's stream decoder feeds an `AudioAnalyzer` the planes of each frame,
/// and checks the frames' CRCs, the sample count and the stored MD5 as `FLACDecoder` does. Not
/// thread-safe: one file, one thread; `finish` once, after the last `feed`.
///
/// libFLAC pulls bytes through its read callback and cannot be suspended in the middle of a
/// metadata block or a frame, and a read that returns no bytes without ending the stream makes
/// it spin. So, on this one thread, the bytes fed are kept in a buffer and libFLAC is asked for
/// one unit (a metadata block, or a frame) only when the bytes not yet handed to it hold all that
/// unit can need plus `margin`: a metadata block's end is known from its header, read here from
/// the buffer ahead of libFLAC; a frame is at most `frameBound` bytes. The rest is decoded in
/// `finish`, where an empty buffer is the end of the stream. Should libFLAC still read past the
/// buffer (a frame larger than STREAMINFO allows), it is aborted and the file reported, never
/// left spinning.
final class FLACAnalyzer {
    /// Bytes kept beyond a unit's own bound. A valid stream needs none: it covers a STREAMINFO
    /// whose length field is short of the 34 bytes libFLAC reads anyway, an encoder whose
    /// max_framesize is a little off, and the few bytes a damaged frame makes libFLAC read before
    /// its CRC fails; it costs only that much lag behind the feed (drained by `finish`).
    static let margin = 64 << 10
    /// At most this much of one `feed` is buffered at a time, so that the buffer stays near
    /// 1 MiB plus `frameBound` and `margin` (plus one metadata block while those are read),
    /// however large the feeds or the file.
    static let piece = 1 << 20

    private let name: String
    private let thresholds: AudioQCThresholds
    private var decoder: UnsafeMutablePointer<FLAC__StreamDecoder>?

    /// Fed bytes not yet handed to libFLAC are storage[head..<tail]; storage[0] is at `base` in
    /// the stream.
    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    /// The largest `capacity` so far, for tests: bounded whatever the file's size.
    private(set) var peakCapacity: Int
    private var head = 0
    private var tail = 0
    private var base: Int64 = 0
    /// In `finish`: an empty buffer is the end of the stream.
    private var finishing = false
    /// The read callback has said the stream ends.
    private var endReached = false
    /// The first error libFLAC found after that: the stream ends inside a frame.
    private var errorAfterEnd: String?

    /// "fLaC" seen at the start.
    private var magicSeen = false
    /// Where the metadata block header not yet parsed starts.
    private var nextHeader: Int64 = 4
    /// The end (in the stream) of each metadata block parsed, in order; libFLAC reads one per
    /// `process_single`, the first with the magic before it.
    private var blockEnds: [Int64] = []
    private var lastBlockParsed = false
    /// Metadata blocks libFLAC has been asked to read.
    private var blocksRead = 0
    /// Bytes not yet handed to libFLAC when it was asked for the unit it reads (for a message).
    private var aheadAtUnitStart: Int64 = 0

    private var streamInfo: FLAC__StreamMetadata_StreamInfo?
    /// The most bytes one frame can take, set from STREAMINFO.
    private var frameBound = 0
    private var analyzer: AudioAnalyzer?
    /// Samples per channel fed to the analyzer.
    private var samples: UInt64 = 0
    /// The first problem: nothing more is decoded after it.
    private var failure: String?
    private var result: FileQC?

    init(name: String, thresholds: AudioQCThresholds = .init()) {
        self.name = name
        self.thresholds = thresholds
        capacity = Self.piece + 2 * Self.margin
        peakCapacity = capacity
        storage = .allocate(byteCount: capacity, alignment: 16)
        guard let decoder = FLAC__stream_decoder_new() else {
            failure = "libFLAC failed on \(name): out of memory"
            return
        }
        self.decoder = decoder
        FLAC__stream_decoder_set_md5_checking(decoder, 1)
        // No seek/tell/length/eof callbacks: a stream arriving over the network cannot seek, and
        // the read callback says when it ends.
        let client = Unmanaged.passUnretained(self).toOpaque()
        let status = FLAC__stream_decoder_init_stream(
            decoder, analyzerRead, nil, nil, nil, nil, analyzerWrite, analyzerMetadata, analyzerError, client)
        if status != FLAC__STREAM_DECODER_INIT_STATUS_OK { failure = "libFLAC failed on \(name): init status \(status.rawValue)" }
    }

    deinit {
        if let decoder { FLAC__stream_decoder_delete(decoder) }
        storage.deallocate()
    }

    /// The next bytes of the stream, any number.
    func feed(_ bytes: UnsafeRawBufferPointer) {
        guard var from = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0, failure == nil, result == nil {
            let n = min(left, Self.piece)
            append(from, n)
            from += n
            left -= n
            parseMetadataHeaders()
            pump()
        }
    }

    /// After the last feed: the audio measured (nil before STREAMINFO) and the first problem found.
    func finish() -> FileQC {
        if let result { return result }
        if failure == nil {
            if !magicSeen {
                failure = "\(name) is not a FLAC stream"
            } else if let decoder {
                finishing = true
                _ = FLAC__stream_decoder_process_until_end_of_stream(decoder)
                if failure == nil { failure = verdict(decoder) }
            }
        }
        let qc = FileQC(name: name, audio: analyzer?.finish(), error: failure)
        if let decoder { FLAC__stream_decoder_delete(decoder) }
        decoder = nil
        result = qc
        return qc
    }

    /// Reads a file 1 MiB at a time and feeds it.
    static func analyze(path: String, name: String, thresholds: AudioQCThresholds = .init()) throws -> FileQC {
        let analyzer = FLACAnalyzer(name: name, thresholds: thresholds)
        try FileIO.stream(path) { analyzer.feed($0) }
        return analyzer.finish()
    }

    // MARK: The buffer

    /// The stream offset just past the bytes fed.
    private var end: Int64 { base + Int64(tail) }
    /// The stream offset of the first byte not yet handed to libFLAC.
    private var handed: Int64 { base + Int64(head) }

    private func append(_ bytes: UnsafeRawPointer, _ count: Int) {
        if tail + count > capacity {
            // Compact: what libFLAC has taken is gone; the rest moves to the front.
            let kept = tail - head
            if head > 0 { storage.copyMemory(from: storage + head, byteCount: kept) }
            (base, head, tail) = (base + Int64(head), 0, kept)
            // Grown when more must be kept (a metadata block larger than the buffer, or frames of
            // over 64 KiB), and shrunk again once that is read; in 64 KiB steps.
            let wanted = max(Self.piece + 2 * Self.margin, (kept + count + 0xFFFF) & ~0xFFFF)
            if wanted > capacity || 2 * wanted <= capacity {
                let resized = UnsafeMutableRawPointer.allocate(byteCount: wanted, alignment: 16)
                resized.copyMemory(from: storage, byteCount: kept)
                storage.deallocate()
                (storage, capacity, peakCapacity) = (resized, wanted, max(peakCapacity, wanted))
            }
        }
        (storage + tail).copyMemory(from: bytes, byteCount: count)
        tail += count
    }

    /// Called by libFLAC's read callback: up to `count` bytes from the buffer.
    fileprivate func read(into destination: UnsafeMutablePointer<UInt8>, count: inout Int) -> FLAC__StreamDecoderReadStatus {
        guard failure == nil else { return FLAC__STREAM_DECODER_READ_STATUS_ABORT }
        let n = min(count, tail - head)
        count = n
        if n == 0 {
            if finishing {
                endReached = true
                return FLAC__STREAM_DECODER_READ_STATUS_END_OF_STREAM
            }
            // Returning 0 bytes with CONTINUE would make libFLAC spin; the margin should make this unreachable.
            failure =
                "\(name): internal error: libFLAC read past the \(aheadAtUnitStart) bytes buffered ahead of it after "
                + "sample \(samples) (a frame larger than its STREAMINFO allows?); QC stopped"
            return FLAC__STREAM_DECODER_READ_STATUS_ABORT
        }
        UnsafeMutableRawPointer(destination).copyMemory(from: storage + head, byteCount: n)
        head += n
        return FLAC__STREAM_DECODER_READ_STATUS_CONTINUE
    }

    // MARK: Metadata, read ahead of libFLAC

    /// Parses every metadata block header fed, as soon as it is fed: libFLAC may take the bytes
    /// after the block it reads into its own buffer, so they must be read here first.
    private func parseMetadataHeaders() {
        if !magicSeen {
            guard end >= 4 else { return }
            // Nothing has been handed yet, so the magic is at storage[0].
            guard head == 0, base == 0, memcmp(storage, "fLaC", 4) == 0 else {
                failure = "\(name) is not a FLAC stream"
                return
            }
            magicSeen = true
        }
        while !lastBlockParsed, nextHeader + 4 <= end {
            guard nextHeader >= handed else {
                failure = "\(name): internal error: libFLAC took a metadata block header before it was read"
                return
            }
            let at = Int(nextHeader - base)
            let header = (0..<4).map { storage.load(fromByteOffset: at + $0, as: UInt8.self) }
            let type = header[0] & 0x7F
            let length = Int64(header[1]) << 16 | Int64(header[2]) << 8 | Int64(header[3])
            // libFLAC would read a short STREAMINFO past its block, and frames need one.
            if blockEnds.isEmpty && (type != 0 || length < 34) {
                failure = "\(name) is damaged: its first metadata block is not a STREAMINFO"
                return
            }
            lastBlockParsed = header[0] & 0x80 != 0
            nextHeader += 4 + length
            blockEnds.append(nextHeader)
        }
    }

    /// True once the buffer holds the next unit libFLAC will read, and `margin` more.
    private func nextUnitBuffered(_ decoder: UnsafeMutablePointer<FLAC__StreamDecoder>) -> Bool {
        switch FLAC__stream_decoder_get_state(decoder) {
        case FLAC__STREAM_DECODER_SEARCH_FOR_METADATA, FLAC__STREAM_DECODER_READ_METADATA:
            if blocksRead < blockEnds.count { return end >= blockEnds[blocksRead] + Int64(Self.margin) }
            if lastBlockParsed {
                // Unreachable while libFLAC reads the headers as parsed here; waiting would buffer the whole file.
                failure = "\(name): internal error: libFLAC reads more metadata blocks than the stream declares"
            }
            return false
        case FLAC__STREAM_DECODER_SEARCH_FOR_FRAME_SYNC, FLAC__STREAM_DECODER_READ_FRAME:
            // libFLAC may hold bytes handed before the frame's start, so counting from `handed` is safe.
            return frameBound > 0 && end - handed >= Int64(frameBound + Self.margin)
        default:
            return false
        }
    }

    /// Decodes units while the buffer is ahead of libFLAC by a unit and the margin.
    private func pump() {
        while magicSeen, failure == nil, let decoder, nextUnitBuffered(decoder) {
            let state = FLAC__stream_decoder_get_state(decoder)
            if state == FLAC__STREAM_DECODER_SEARCH_FOR_METADATA || state == FLAC__STREAM_DECODER_READ_METADATA { blocksRead += 1 }
            aheadAtUnitStart = end - handed
            let ok = FLAC__stream_decoder_process_single(decoder)
            guard failure == nil else { break }
            let after = FLAC__stream_decoder_get_state(decoder)
            // The read callback never ends the stream here, so anything but a unit read is a failure.
            if ok == 0 || after == FLAC__STREAM_DECODER_ABORTED || after == FLAC__STREAM_DECODER_END_OF_STREAM {
                failure = "libFLAC failed on \(name): \(FLACDecoder.stateString(decoder))"
            }
        }
        // Nothing more will be decoded: the bytes kept are dropped.
        if failure != nil { (head, tail) = (0, 0) }
    }

    /// Called by libFLAC's metadata callback with STREAMINFO.
    fileprivate func take(_ info: FLAC__StreamMetadata_StreamInfo) {
        guard streamInfo == nil, failure == nil else { return }
        streamInfo = info
        let (channels, bits) = (Int(info.channels), Int(info.bits_per_sample))
        guard [8, 16, 24].contains(bits) else {
            failure = "\(name) holds \(bits)-bit audio: unsupported by QC, which measures 8-, 16- and 24-bit audio"
            return
        }
        guard info.sample_rate > 0 else {
            failure = "\(name) is damaged: its STREAMINFO gives a sample rate of 0"
            return
        }
        // The verbatim frame of the largest block (a side channel takes a bit more per sample),
        // which libFLAC's encoder never exceeds, with room for the frame header (up to 16 bytes),
        // subframe headers and wasted-bits counts, and the CRC; or max_framesize when larger, in
        // case another encoder exceeds it. A max_blocksize under 16 is invalid: the largest is assumed.
        let blocksize = info.max_blocksize >= 16 ? Int(info.max_blocksize) : 65_535
        frameBound = max(Int(info.max_framesize), 32 + channels * (8 + (blocksize * (bits + 1) + 7) / 8))
        let format = RawFormat(channels: channels, bitsPerSample: bits, sampleRate: Int(info.sample_rate), bigEndian: false, signed: true)
        analyzer = AudioAnalyzer(
            format: format, expectedFrames: info.total_samples > 0 ? Int64(info.total_samples) : nil, thresholds: thresholds)
    }

    /// Called by libFLAC's write callback with each frame's samples.
    fileprivate func take(
        _ header: FLAC__FrameHeader, _ buffer: UnsafePointer<UnsafePointer<FLAC__int32>?>
    ) -> FLAC__StreamDecoderWriteStatus {
        // No complete frame needs a byte past the end: this is a false sync inside the last, cut, one.
        if endReached {
            errorAfterEnd = errorAfterEnd ?? "a frame decoded past the end"
            return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT
        }
        guard failure == nil, let analyzer, let info = streamInfo else {
            if failure == nil { failure = "\(name) is damaged: a frame comes before its STREAMINFO" }
            return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT
        }
        let channels = Int(header.channels)
        guard header.channels == info.channels, header.bits_per_sample == info.bits_per_sample else {
            failure =
                "\(name) is damaged: the frame at sample \(samples) is \(channels)-channel \(header.bits_per_sample)-bit, "
                + "unlike its STREAMINFO"
            return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT
        }
        var planes: [UnsafePointer<Int32>] = []
        planes.reserveCapacity(channels)
        for c in 0..<channels {
            guard let plane = buffer[c] else {
                failure = "libFLAC failed on \(name): no samples for channel \(c)"
                return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT
            }
            planes.append(plane)
        }
        analyzer.feed(planes: planes, frames: Int(header.blocksize))
        samples += UInt64(header.blocksize)
        return FLAC__STREAM_DECODER_WRITE_STATUS_CONTINUE
    }

    /// Called by libFLAC's error callback. libFLAC would carry on past the error (dropping the
    /// frame and filling its gap with silence); noting it makes the next read or write abort.
    /// After the end, libFLAC rewinds to the sync code of the frame the end cut and looks for
    /// another in its bytes, which it reports as lost sync: noted apart, for `verdict`.
    fileprivate func take(_ status: FLAC__StreamDecoderErrorStatus) {
        guard failure == nil, errorAfterEnd == nil else { return }
        let what = FLACDecoder.describe(status)
        if endReached { errorAfterEnd = what } else { failure = "\(name) is damaged: \(what) after sample \(samples)" }
    }

    /// The problem with a stream decoded to its end without an error on the way, or nil.
    private func verdict(_ decoder: UnsafeMutablePointer<FLAC__StreamDecoder>) -> String? {
        guard let info = streamInfo else { return "\(name) is damaged: it ends before its STREAMINFO (truncated)" }
        guard lastBlockParsed, let metadataEnd = blockEnds.last, end >= metadataEnd else {
            return "\(name) is damaged: it ends inside its metadata (truncated)"
        }
        // A cut between frames ends the stream cleanly as far as libFLAC knows, one inside a frame
        // with an error after the end: the sample count tells either.
        let total = info.total_samples
        if total > 0 && samples < total { return "\(name) ends after sample \(samples) of \(total) (truncated)" }
        if let what = errorAfterEnd {
            // All the samples are there: bytes after them that are not a frame.
            if total > 0 { return "\(name) is damaged: \(what) after sample \(samples)" }
            return "\(name) ends with an incomplete frame after sample \(samples) (truncated)"
        }
        guard FLACDecoder.endOfStream(decoder) else { return "libFLAC failed on \(name): \(FLACDecoder.stateString(decoder))" }
        if total > 0 && samples > total { return "\(name) is damaged: it holds \(samples) samples but its STREAMINFO says \(total)" }
        // finish() is where libFLAC compares the MD5; it skips that when the stored MD5 is all zeros.
        guard FLAC__stream_decoder_finish(decoder) != 0 else { return "\(name): stored MD5 differs from the decoded audio (damaged)" }
        guard withUnsafeBytes(of: info.md5sum, { $0.contains { $0 != 0 } }) else {
            return "\(name) has no stored MD5, so its audio cannot be verified"
        }
        return nil
    }
}

private func flacAnalyzer(_ client: UnsafeMutableRawPointer?) -> FLACAnalyzer? {
    client.map { Unmanaged<FLACAnalyzer>.fromOpaque($0).takeUnretainedValue() }
}

private let analyzerRead: FLAC__StreamDecoderReadCallback = { _, buffer, bytes, client in
    guard let a = flacAnalyzer(client), let buffer, let bytes else { return FLAC__STREAM_DECODER_READ_STATUS_ABORT }
    return a.read(into: buffer, count: &bytes.pointee)
}

private let analyzerWrite: FLAC__StreamDecoderWriteCallback = { _, frame, planes, client in
    guard let a = flacAnalyzer(client), let frame, let planes else { return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT }
    return a.take(frame.pointee.header, planes)
}

private let analyzerMetadata: FLAC__StreamDecoderMetadataCallback = { _, metadata, client in
    guard let a = flacAnalyzer(client), let m = metadata, m.pointee.type == FLAC__METADATA_TYPE_STREAMINFO else { return }
    a.take(m.pointee.data.stream_info)
}

private let analyzerError: FLAC__StreamDecoderErrorCallback = { _, status, client in
    flacAnalyzer(client)?.take(status)
}
