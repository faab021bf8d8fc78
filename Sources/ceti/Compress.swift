import ArgumentParser
import CetiKit
import Foundation

struct Compress: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
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
                skips what is done (an original left by a stopped run is removed once its output, read back \
                from the disk, still has the recorded SHA-256).

                Two inputs never share an output: a.raw beside a.wav (or a.RAW) both map to a.flac, so both \
                are reported as failed and kept, and nothing is written for them. A staged copy pulled from a \
                tag must still have the SHA-256 recorded by its pull, or it is kept and nothing is recorded. A \
                folder or file that cannot be read is reported as failed; the rest is still compressed.

                Exit status: 0 all compressed or already done, 1 a file failed, 2 usage error.
                """ + manualExamples(examples))
    }

    static let examples = """
          ceti compress data/                      every tag's and card's folder under data/, originals removed
          ceti compress -n data/wt-1a2b3c4d        list what would be compressed; writes nothing
          ceti compress --keep -j 4 staging/       keep the originals, 4 files at a time
          ceti compress --endian little --bps 24 --sample-rate 48000 rec/    another raw layout
        """

    @Argument(help: "Directories to compress (recursively).", completion: .directory)
    var directories: [String]
    @OptionGroup var compression: CompressionOptions
    @Option(name: .shortAndLong, help: "Files in parallel (default: the number of cores).") var jobs: Int?
    @Flag(help: "Keep the originals.") var keep = false
    @Flag(name: [.customShort("n"), .customLong("dry-run")], help: "Show what would be compressed; writes nothing.") var dryRun = false
    @OptionGroup var configFile: ConfigOption
    @OptionGroup var ledger: LedgerOption
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let j = jobs ?? cores
            guard (1...64).contains(j) else { throw UsageError("--jobs \(j): give a number from 1 to 64") }
            let env = ProcessInfo.processInfo.environment
            let config = try ConfigFile.load(explicit: configFile.config, environment: env)
            var options = CompressOptions(
                directories: directories,
                ledgerPath: Ledger.resolvePath(flag: ledger.ledger, environment: env, config: config), jobs: j)
            try compression.apply(to: &options, config: config)
            options.keep = keep
            options.dryRun = dryRun
            let summary = try await CompressRun.execute(options, console: console)
            return try output.finish(summary, console: console)
        }
    }
}
