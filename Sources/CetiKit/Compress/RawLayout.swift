import Foundation

/// Where one recording's sample layout comes from. A `.bin` of the next tag generation says it in
/// its name (`<µs>.<be|le>.<N>bit.<C>ch.<R>sps.bin`); a `.raw` takes it from the tag's newest
/// `data_config_<ts>.txt` at or before the recording's start (firmware 2.3.0 on: rate 48/96/192 kHz
/// and depth 16/24 are configurable; 3 channels, signed big-endian as ever); else the compress
/// options (`--channels --bps --sample-rate --endian --sign`).
public struct RawLayout: Sendable, Equatable {
    public var format: RawFormat
    /// `name` (a .bin), the data_config file's name, or `options`.
    public var source: String

    /// The layout of the next generation's file names, e.g. `1700000000000000.be.16bit.3ch.96000sps.bin`.
    static func fromName(_ name: String) -> RawFormat? {
        let parts = ((name as NSString).lastPathComponent).split(separator: ".")
        guard parts.count == 6, parts[5].lowercased() == "bin", parts[0].allSatisfy(\.isNumber) else { return nil }
        let endian = parts[1].lowercased()
        guard endian == "be" || endian == "le",
            let bits = Int(parts[2].lowercased().dropLast(3)), parts[2].lowercased().hasSuffix("bit"),
            let channels = Int(parts[3].lowercased().dropLast(2)), parts[3].lowercased().hasSuffix("ch"),
            let rate = Int(parts[4].lowercased().dropLast(3)), parts[4].lowercased().hasSuffix("sps")
        else { return nil }
        let format = RawFormat(channels: channels, bitsPerSample: bits, sampleRate: rate, bigEndian: endian == "be", signed: true)
        return format.problem == nil ? format : nil
    }

    /// What a `data_config_<ts>.txt` says of the audio (the firmware writes `audio_bitdepth =: 24`
    /// and `audio_sample_rate = 96 # KHz`; a rate of 0 is its 750 Hz default). Values it does not
    /// give come from `base`.
    static func fromDataConfig(_ text: String, base: RawFormat) -> RawFormat {
        var format = base
        format.channels = 3
        format.bigEndian = true
        format.signed = true
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            guard let eq = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[eq...].drop { $0 == "=" || $0 == ":" || $0 == " " || $0 == "\t" }
            guard let number = Int(value.prefix { $0.isNumber }) else { continue }
            switch key {
            case "audio_bitdepth": format.bitsPerSample = number <= 16 ? 16 : 24
            case "audio_sample_rate": format.sampleRate = number > 96 ? 192_000 : number > 48 ? 96_000 : number > 0 ? 48_000 : 750
            default: continue
            }
        }
        return format
    }

    /// A tag timestamp (seconds, milliseconds or microseconds since the epoch) in milliseconds.
    static func milliseconds(_ value: Int64) -> Int64 {
        value >= 100_000_000_000_000 ? value / 1000 : value >= 100_000_000_000 ? value : value * 1000
    }

    /// The layout of the recording at `path` (`.raw` or `.bin`), `options` when nothing says
    /// otherwise. The data_config files are read from the recording's folder (where a pull puts
    /// them, smallest first, before the recordings).
    static func resolve(_ path: String, options: RawFormat) -> RawLayout {
        let name = (path as NSString).lastPathComponent
        if let format = fromName(name) { return RawLayout(format: format, source: "name") }
        guard name.lowercased().hasSuffix(".raw"), let start = Int64(name.dropLast(4)) else {
            return RawLayout(format: options, source: "options")
        }
        let folder = (path as NSString).deletingLastPathComponent
        var newest: (ms: Int64, name: String)?
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: fsPathString(folder))) ?? [] {
            guard entry.hasPrefix("data_config_"), entry.hasSuffix(".txt"),
                let ts = Int64(entry.dropFirst("data_config_".count).dropLast(4))
            else { continue }
            let ms = milliseconds(ts)
            if ms <= milliseconds(start), ms > (newest?.ms ?? .min) { newest = (ms, entry) }
        }
        guard let newest, let text = try? String(contentsOfFile: fsPathString(folder) + "/" + newest.name, encoding: .utf8) else {
            return RawLayout(format: options, source: "options")
        }
        return RawLayout(format: fromDataConfig(text, base: options), source: newest.name)
    }

    /// The file system's spelling of a folder kept in name form.
    private static func fsPathString(_ path: String) -> String {
        String(decoding: NameCodec.decodePath(path), as: UTF8.self)
    }
}
