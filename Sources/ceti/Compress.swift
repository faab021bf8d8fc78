import ArgumentParser
import CetiKit
import Foundation

struct Compress: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "FLAC-encode raw hydrophone audio and gzip sensor CSV, verified, originals removed only with proof.",
        discussion: """
            *.raw → *.flac, *.wav → *.flac, *.csv → *.csv.gz; everything else is left alone. Raw audio is \
            headerless PCM laid out as --channels/--bps/--sample-rate/--endian/--sign say (the tag's: 3 \
            channels, 16-bit signed big-endian, 96 kHz); WAV files carry their own layout.

            FLAC is encoded by libFLAC with its verify mode on, and the MD5 it stores must equal the MD5 \
            of the audio read. gzip output is inflated again with zlib and must give back the input's \
            size and SHA-256. Each output is written as NAME.part, fsynced, verified, renamed and recorded \
            in the ledger; only then is the original removed (unless --keep). A raw file that is not a \
            whole number of frames, an empty file or a bad WAV is reported and left untouched. A rerun \
            skips what is done.

            Exit status: 0 all compressed or already done, 1 a file failed, 2 usage error.
            """)

    @Argument(help: "Directories to compress (recursively).")
    var directories: [String]
    @Option(help: "Raw audio: channels.") var channels = 3
    @Option(help: "Raw audio: bits per sample, 16 or 24.") var bps = 16
    @Option(name: .customLong("sample-rate"), help: "Raw audio: sample rate in Hz.") var sampleRate = 96_000
    @Option(help: "Raw audio: byte order, big or little.") var endian = "big"
    @Option(help: "Raw audio: signed or unsigned samples.") var sign = "signed"
    @Option(help: "FLAC compression level, 0 (fastest) to 8 (smallest).") var level = 5
    @Option(name: .customLong("gzip-level"), help: "gzip compression level, 1 to 9.") var gzipLevel = 6
    @Option(name: .shortAndLong, help: "Files in parallel (default: the number of cores).") var jobs: Int?
    @Flag(help: "Keep the originals.") var keep = false
    @Flag(name: [.customShort("t"), .customLong("dry-run")], help: "Show what would be compressed; writes nothing.") var dryRun = false
    @OptionGroup var ledger: LedgerOption
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            guard endian == "big" || endian == "little" else { throw UsageError("--endian \(endian): give big or little") }
            guard sign == "signed" || sign == "unsigned" else { throw UsageError("--sign \(sign): give signed or unsigned") }
            guard (0...8).contains(level) else { throw UsageError("--level \(level): give 0 to 8") }
            guard (1...9).contains(gzipLevel) else { throw UsageError("--gzip-level \(gzipLevel): give 1 to 9") }
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let j = jobs ?? cores
            guard (1...64).contains(j) else { throw UsageError("--jobs \(j): give a number from 1 to 64") }
            let env = ProcessInfo.processInfo.environment
            let config = try ConfigFile.load(explicit: nil, environment: env)
            var options = CompressOptions(directories: directories,
                                          ledgerPath: Ledger.resolvePath(flag: ledger.ledger, environment: env, config: config), jobs: j)
            options.raw = RawFormat(channels: channels, bitsPerSample: bps, sampleRate: sampleRate,
                                    bigEndian: endian == "big", signed: sign == "signed")
            options.flacLevel = level
            options.gzipLevel = gzipLevel
            options.keep = keep
            options.dryRun = dryRun
            let summary = try await CompressRun.execute(options, console: console)
            return try output.finish(summary, console: console)
        }
    }
}
