import ArgumentParser
import CetiKit
import Foundation

struct Restore: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "restore",
            abstract: "Get a device's original files back from S3, from a run's manifest alone (no ledger needed).",
            discussion: """
                <source> is a manifest.json (a file, or a folder holding one) or where a run left it in S3: \
                s3://BUCKET/PREFIX/_runs/RUN/DEVICE/ (or the s3:// URL of the manifest.json itself). Each file it \
                lists is downloaded (ranged GETs, 8 MiB at a time, into <directory>/.ceti-restore-*), turned back into the \
                original — a FLAC of raw audio decoded to the raw layout the manifest records (the tag's default, \
                said once, where an old manifest records none), a FLAC of a WAV to that WAV, a .gz inflated, anything else as it is — and only \
                when its size and SHA-256 are the manifest's is it written into <directory> under its original name, with \
                the device's modification time. A file already in <directory> with the manifest's size and SHA-256 counts \
                as restored; one with other content is never overwritten.

                Resumable: rerun the same command after an interruption, a dead link or a full disk; finished \
                files are checked, not downloaded again, and a partial download continues from where it stopped.

                The objects are read from --bucket, else from the bucket the manifest was read from, else from the \
                bucket the manifest names. Nothing is written to S3 and no ledger is read or made.

                Exit status: 0 every selected file restored (or already there), 1 a file could not be restored or \
                does not match the manifest (each named), 2 usage/configuration error.
                """ + manualExamples(examples))
    }

    static let examples = """
          ceti restore s3://ceti-raw/raw/_runs/RUN/wt-0a1b2c3d/ out/   one tag's run
          ceti restore manifest.json out/ --only '*.csv'               only its sensor files
          ceti restore s3://ceti-raw/raw/_runs/RUN/wt-0a1b2c3d/ out/ --keep-derivatives
        """

    @Argument(help: "The run's manifest: a path, or s3://BUCKET/PREFIX/_runs/RUN/DEVICE/.")
    var source: String
    @Argument(help: "The folder to write the originals into (created when missing).", completion: .directory)
    var directory: String
    @Option(help: ArgumentHelp("Only files whose name matches this shell pattern; repeatable.", valueName: "glob"))
    var only: [String] = []
    @Option(name: .shortAndLong, help: "Files restored at once.")
    var jobs = 4
    @Flag(help: "Also keep each downloaded FLAC / .gz in the folder, beside its original.")
    var keepDerivatives = false
    @Option(help: "The bucket holding the objects, when not the one the manifest was read from (or names).")
    var bucket: String?
    @Flag(name: [.customShort("n"), .customLong("dry-run")], help: "Show what would be downloaded; writes nothing.")
    var dryRun = false

    @OptionGroup var s3: S3ConnectionOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard jobs >= 1 else { throw ValidationError("--jobs \(jobs): give 1 or more") }
    }

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let env = ProcessInfo.processInfo.environment
            let config = try ConfigFile.load(explicit: s3.config, environment: env)
            var options = RestoreOptions(source: try RestoreSource(parsing: source), directory: directory)
            options.only = only
            options.jobs = jobs
            options.keepDerivatives = keepDerivatives
            options.bucket = bucket
            options.dryRun = dryRun
            let summary = try await RestoreRun.execute(
                options, flags: s3.flags(bucket: nil), environment: env, config: config, console: console)
            return try output.finish(summary, console: console)
        }
    }
}
