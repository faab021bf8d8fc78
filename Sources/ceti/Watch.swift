import ArgumentParser
import CetiKit
import Foundation

struct Watch: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "watch",
            abstract: "Watch folders and upload each session once it is complete: the unattended shore-station and lab mode.",
            discussion: """
                The config file's `watch:` section names the roots to scan and, per profile, what makes a session \
                (each folder session_depth levels below a root), when it is complete (required_markers all there, \
                and nothing in it changed for stable_for), and what happens after its upload (after_upload: move to \
                ROOT/processed/, keep, or delete-local — each file only after S3 confirmed its own object). A complete \
                session is compressed (compress: true) and uploaded with the same steps as ingest, then its \
                manifest.json and _COMPLETE go under PREFIX/_runs/RUN/SESSION/. A failed session is retried with \
                backoff at later scans; the others go on. Notifications (webhook, e-mail) and a status page are \
                optional. See README "watch" for the whole config.
                """ + manualExamples(examples),
            subcommands: [WatchRunCommand.self, WatchValidateConfig.self, WatchPrintManifest.self, WatchTestNotify.self],
            defaultSubcommand: WatchRunCommand.self)
    }

    static let examples = """
          ceti watch --status-listen 127.0.0.1:8787       run, with the status page
          ceti watch --once                               one scan, for cron
          ceti watch validate-config --config watch.yaml  check the config file
          ceti watch print-manifest /srv/incoming/s1      what would be uploaded
        """
}

struct WatchRunCommand: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "run",
            abstract: "Scan the roots every interval (or once) and upload the complete sessions.",
            discussion: """
                Runs until SIGTERM or SIGINT (which end the request in hand), or with --once after one scan. One \
                watcher per ledger. Exit status: 0 nothing failed, 1 a session failed (listed), 2 usage or \
                configuration error.
                """ + manualExamples(Watch.examples))
    }

    @Flag(help: "Scan once, upload what is complete, and exit (for cron).")
    var once = false
    @Option(
        name: .customLong("status-listen"),
        help: ArgumentHelp("Serve the status page, /status.json and /metrics at HOST:PORT (a loopback address).", valueName: "host:port"))
    var statusListen: String?
    @Flag(name: .customLong("status-listen-any"), help: "Allow --status-listen on an address that is not loopback.")
    var statusListenAny = false
    @Option(name: .shortAndLong, help: "Files sent to S3 at once per session (default 8).")
    var jobs: Int?

    @OptionGroup var s3: S3Options
    @OptionGroup var ledger: LedgerOption
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if let jobs, !(1...64).contains(jobs) { throw ValidationError("--jobs \(jobs): give a number from 1 to 64") }
    }

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let env = ProcessInfo.processInfo.environment
            let config = try ConfigFile.load(explicit: s3.config, environment: env)
            let watch = try WatchConfig.load(config)
            // The bucket of roots that name none; roots that name theirs need no default.
            let fallback = try s3.bucketURL().name ?? env["CETI_BUCKET"].flatMap { $0.isEmpty ? nil : $0 } ?? config.string("bucket")
            if fallback == nil, let root = watch.roots.first(where: { $0.bucket == nil }) {
                throw UsageError(
                    "watch root \(root.path) names no bucket and there is no default: give --bucket, or `bucket:` in the config file")
            }
            var flags = try s3.flags()
            flags.bucket = fallback ?? watch.roots.first?.bucket
            let settings = try S3Settings.resolve(flags, environment: env, config: config)
            var options = WatchOptions(config: watch, ledgerPath: Ledger.resolvePath(flag: ledger.ledger, environment: env, config: config))
            options.bucket = fallback
            options.prefix = try s3.bucketURL().prefix ?? config.string("prefix") ?? options.prefix
            options.once = once
            options.qc = try QCThresholds.load(config)
            options.statusListen = statusListen
            options.statusListenAny = statusListenAny
            options.jobs = try jobs ?? config.int("jobs") ?? options.jobs
            return try output.finish(try await WatchRun.execute(options, settings: settings, console: console), console: console)
        }
    }
}

struct WatchValidateConfig: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "validate-config",
            abstract: "Check the config file's watch section: each problem with its key and line.",
            discussion: "Exit status: 0 valid, 2 a problem (each listed on its own line)." + manualExamples(Watch.examples))
    }

    @OptionGroup var configFile: ConfigOption
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let config = try ConfigFile.load(explicit: configFile.config, environment: ProcessInfo.processInfo.environment)
            let watch = try WatchConfig.load(config)
            for root in watch.roots where !FileManager.default.fileExists(atPath: root.path) {
                console.info("note: watch root \(root.path) is not there now (a drive not mounted yet?)")
            }
            let channels = [
                watch.notify?.webhook == nil ? nil : "webhook", watch.notify?.email.map { "e-mail to \($0.to.joined(separator: ", "))" },
            ]
            .compactMap { $0 }
            console.output(
                "\(config.path ?? "config"): watch section valid: \(watch.roots.count) root(s), \(watch.profiles.count) profile(s), "
                    + "notify: \(channels.isEmpty ? "none" : channels.joined(separator: ", "))")
            return 0
        }
    }
}

struct WatchPrintManifest: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "print-manifest",
            abstract: "Print what would be uploaded for one session folder, and whether it is complete; touches no S3.",
            discussion: "Every file is read to give its SHA-256." + manualExamples(Watch.examples))
    }

    @Argument(help: "A session folder below one of the watched roots.", completion: .directory)
    var session: String

    @OptionGroup var configFile: ConfigOption
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let config = try ConfigFile.load(explicit: configFile.config, environment: ProcessInfo.processInfo.environment)
            let plan = try SessionPlan.make(
                session, config: WatchConfig.load(config), defaultBucket: config.string("bucket"),
                defaultPrefix: config.string("prefix") ?? "raw")
            console.output(output.json ? try JSONOutput.encode(plan) : plan.text)
            return 0
        }
    }
}
