import ArgumentParser
import CetiKit
import Foundation

struct Verify: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "verify",
            abstract: "Check that S3 still holds every verified object as the ledger recorded it, and every backup copy.",
            discussion: """
                Every object the ledger verified in the bucket (or only a run's, or a device's) is asked for with \
                HEAD: size, ETag and x-amz-meta-sha256 must be those recorded. --deep also reads each object \
                back (ranged GETs, 8 MiB at a time per object) and hashes it, and hashes each backup copy and each \
                object's local file still in staging; without it those must have their recorded sizes. Every \
                mismatch is listed (missing, changed, metadata, corrupt, backup, local). Nothing is written anywhere.

                Exit status: 0 everything as recorded, 1 a mismatch was found, 2 usage/configuration error.
                """ + manualExamples(examples))
    }

    static let examples = """
          ceti verify --bucket ceti-raw            HEAD every verified object
          ceti verify --deep --device wt-0a1b2c3d  read one tag's objects back
          ceti verify --run RUN_ID --json          one run's objects, for scripts
        """

    @Flag(help: "Also read every object back and hash it, and hash every backup copy.")
    var deep = false
    @Option(help: "Only the objects listed by this run's manifests (a run id from `ceti status`).")
    var run: String?
    @Option(help: "Only this device's objects (its hostname, e.g. wt-0a1b2c3d).")
    var device: String?
    @Option(name: .shortAndLong, help: "Objects checked at once.")
    var jobs = 8

    @OptionGroup var s3: S3Options
    @OptionGroup var ledger: LedgerOption
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard jobs >= 1 else { throw ValidationError("--jobs \(jobs): give 1 or more") }
    }

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let env = ProcessInfo.processInfo.environment
            let config = try ConfigFile.load(explicit: s3.config, environment: env)
            let settings = try s3.settings(environment: env, config: config)
            var options = VerifyOptions(
                bucket: settings.bucket, ledgerPath: Ledger.resolvePath(flag: ledger.ledger, environment: env, config: config))
            options.deep = deep
            options.run = run
            options.device = device
            options.jobs = jobs
            return try output.finish(try await VerifyRun.execute(options, settings: settings, console: console), console: console)
        }
    }
}
