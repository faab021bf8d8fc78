import Foundation

/// Recording QC of a file on disk, for `ceti qc DIR`: each kind read once, start to end, by the
/// analyzer that understands it. Raw audio takes its layout as compress would (`.bin` name, the
/// tag's data_config, else `raw`); FLAC is decoded with libFLAC; a `.csv.gz` is inflated.
enum QCFileReader {
    static func analyze(path: String, name: String, raw: RawFormat, thresholds: QCThresholds) throws -> FileQC? {
        let lower = name.lowercased()
        if lower.hasSuffix(".csv") {
            return FileQC(name: name, sensor: try SensorAnalyzer.analyze(path: path, name: name, thresholds: thresholds.sensor))
        }
        if lower.hasSuffix(".csv.gz") { return try gzippedCSV(path: path, name: name, thresholds: thresholds.sensor) }
        if lower.hasSuffix(".flac") { return try FLACAnalyzer.analyze(path: path, name: name, thresholds: thresholds.audio) }
        guard FileQC.kind(of: name) == .audio else { return nil }
        let fd = open(fsPath(path), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError.read(path: path, message: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileIOError.read(path: path, message: String(cString: strerror(errno))) }
        var (format, offset, length) = (RawLayout.resolve(path, options: raw).format, Int64(0), Int64(st.st_size))
        if lower.hasSuffix(".wav") {
            do {
                let wav = try WAVHeader.parse(fd: fd, path: path, fileSize: length)
                (format, offset, length) = (wav.format, wav.dataOffset, wav.dataLength)
            } catch {
                return FileQC(name: name, error: "\(error)")
            }
        }
        guard AudioAnalyzer.supports(format) else {
            return FileQC(name: name, error: "\(format.flacFlags) audio is not measured (8, 16 or 24 bits only)")
        }
        return try pcm(fd: fd, path: path, name: name, format: format, offset: offset, length: length, thresholds: thresholds.audio)
    }

    /// Interleaved PCM at `offset`, read 1 MiB of whole frames at a time.
    private static func pcm(
        fd: Int32, path: String, name: String, format: RawFormat, offset: Int64, length: Int64, thresholds: AudioQCThresholds
    ) throws -> FileQC {
        let frame = Int64(format.frameBytes)
        let analyzer = AudioAnalyzer(format: format, expectedFrames: length / frame, thresholds: thresholds)
        let chunk = max(1, (1 << 20) / format.frameBytes) * format.frameBytes
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var samples = [Int32](repeating: 0, count: chunk / format.bytesPerSample)
        var le = [UInt8](repeating: 0, count: chunk)
        let whole = length / frame * frame
        var done: Int64 = 0
        while done < whole {
            let want = Int(min(Int64(chunk), whole - done))
            let got = try FileIO.readFully(fd, path, buffer, want, at: offset + done)
            let usable = got / format.frameBytes * format.frameBytes
            PCM.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<usable]), format: format, into: &samples, littleEndian: &le)
            samples.withUnsafeBufferPointer {
                analyzer.feed(interleaved: UnsafeBufferPointer(rebasing: $0[0..<usable / format.bytesPerSample]))
            }
            done += Int64(usable)
            if got < want { break }
        }
        var qc = FileQC(name: name, audio: analyzer.finish())
        if done < length {
            qc.error =
                "\(length - done) bytes at the end are not a whole \(frame)-byte frame of \(format.flacFlags) (a truncated recording, or the wrong layout?)"
        }
        return qc
    }

    private static func gzippedCSV(path: String, name: String, thresholds: SensorQCThresholds) throws -> FileQC {
        let sensor = SensorAnalyzer(name: name, thresholds: thresholds)
        let inflater = try GzipWriter.Inflater(path: path) { sensor.feed($0) }
        try FileIO.stream(path) { inflater.feed($0) }
        var qc = FileQC(name: name, sensor: sensor.finish())
        do { _ = try inflater.finish() } catch { qc.error = "\(error)" }
        return qc
    }
}
