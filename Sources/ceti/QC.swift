import ArgumentParser
import CetiKit
import Foundation

struct QC: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "qc",
            abstract: "Tell whether each device recorded well: levels, clipping, dead channels, gaps, sensor checks.",
            discussion: """
                With DIR, every recording (.raw, .bin with its layout in the name, .wav, .flac) and sensor file \
                (.csv, .csv.gz) below it is read once and measured; the files directly in DIR are one device \
                (named after DIR), each folder in it another (a staging folder's <hostname>/ folders). A raw \
                file's layout comes from its name, the tag's data_config_<ts>.txt beside it, else the raw audio \
                options. With --run or --device, what ingest measured while it encoded and pulled is read from \
                the ledger: no file is read, and the files may be long gone.

                Per recording and channel: RMS and peak level (dBFS), clipped samples (within 1 LSB of full \
                scale), DC offset, a dead channel (all samples equal, or quieter than the floor), samples stuck \
                on one value, and the duration; across a device's recordings, gaps and overlaps between the \
                starts their <epoch_ms> names give and their durations. Per sensor CSV: the header, rows that do \
                not parse, the timestamp column (backwards, gaps over N × the median interval), values outside \
                plausible ranges (pressure, water temperature, battery) and columns that never change.

                Each device gets a verdict: bad (a dead channel, clipping above the bad threshold, a damaged \
                file, or no recording for longer than gap_bad_seconds), warn (anything else found) or ok. The \
                thresholds are the config file's qc: section, each optional: dead_floor_dbfs (default -90), \
                stuck_run_seconds (0.1), clipping_warn_percent (0.01), clipping_bad_percent (1), \
                dc_offset_warn_percent (1), gap_warn_seconds (1), gap_bad_seconds (60), sensor_gap_factor \
                (10). --html writes one \
                self-contained page (no script, no network) with a row per device, the timeline with its gaps, \
                each recording's level over time per channel and small sensor plots.

                Exit status: 0 no device is bad, 4 a device is bad, 1 a file could not be read, 2 usage or \
                configuration error.
                """ + manualExamples(examples))
    }

    static let examples = """
          ceti qc staging/                        measure every tag folder in staging before the wipe
          ceti qc --run RUN_ID --html qc.html     the report of an ingest run, from the ledger
          ceti qc --device wt-0a1b2c3d --json     a tag's latest ingest, for scripts
        """

    @Argument(help: "A folder to measure (its files, and one device per folder in it).", completion: .directory)
    var dir: String?
    @Option(help: "What ingest measured for this device in its latest run (from the ledger).")
    var device: String?
    @Option(help: "What ingest measured in this run (a run id from `ceti status`), every device.")
    var run: String?
    @Option(
        help: ArgumentHelp("Write the report as one self-contained HTML page.", valueName: "file"), completion: .file(extensions: ["html"]))
    var html: String?
    @Option(name: .shortAndLong, help: "Files measured at once (default: the number of cores).")
    var jobs: Int?

    @OptionGroup(title: "Raw audio") var compression: RawLayoutOptions
    @OptionGroup var configFile: ConfigOption
    @OptionGroup var ledger: LedgerOption
    @OptionGroup var output: OutputOptions

    func validate() throws {
        let given = [dir != nil, device != nil, run != nil].filter { $0 }.count
        guard given == 1 else { throw ValidationError("give one of DIR, --device or --run") }
        if let jobs, !(1...64).contains(jobs) { throw ValidationError("--jobs \(jobs): give a number from 1 to 64") }
    }

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let env = ProcessInfo.processInfo.environment
            let config = try ConfigFile.load(explicit: configFile.config, environment: env)
            let source: QCOptions.Source = dir.map { .directory($0) } ?? device.map { .device($0) } ?? .run(run!)
            var options = QCOptions(
                source: source, ledgerPath: Ledger.resolvePath(flag: ledger.ledger, environment: env, config: config),
                jobs: jobs ?? ProcessInfo.processInfo.activeProcessorCount)
            options.thresholds = try QCThresholds.load(config)
            options.raw = try compression.format()
            options.html = html.map(FileWalker.absolute)
            return try output.finish(try await QCRun.execute(options, console: console), console: console)
        }
    }
}
