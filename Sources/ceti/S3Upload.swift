import ArgumentParser
import CetiKit
import Foundation

struct S3Upload: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "s3upload",
            abstract: "Upload directories to S3: resumable, deduplicating, verified.",
            discussion: """
                Each DIR holds one folder per device (DIR/wt-1a2b3c4d/x.flac → device wt-1a2b3c4d, path x.flac); \
                a file directly in DIR goes to device unknown-device. Hidden files, *.part files and symbolic \
                links are skipped.

                A file is skipped without reading it when the ledger proves the same file is already verified \
                in S3. Otherwise it is hashed (SHA-256 and the part MD5s) and S3 is asked (HEAD, or one listing for a folder of many files): identical \
                content is recorded and not sent again; different content is a conflict, left untouched unless \
                --overwrite. Uploads send Content-MD5 on every request, sign the payload's SHA-256, store \
                x-amz-meta-sha256, and compare S3's ETag with the local one before the ledger marks the object \
                verified. An interrupted multipart upload resumes on the next run without resending its parts.

                {date} in the key is the UTC date the file was first planned, kept in the ledger, so a resume \
                on a later day uses the same key.

                Credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN], else the profile in \
                ~/.aws/credentials or ~/.aws/config (credential_process included).

                Exit status: 0 all uploaded or skipped, 1 some file failed or conflicted, 2 usage/configuration error.
                """ + manualExamples(examples))
    }

    static let examples = """
          ceti s3upload -n --bucket ceti-raw data/           what would be uploaded, skipped, resumed (-t too)
          ceti s3upload --bucket s3://ceti-raw/raw data/     upload under raw/{date}/{device}/…
          ceti s3upload --bwlimit 2M -j 2 data/              over the ship's satellite link
          ceti s3upload -v --config boat.yaml staging/       bucket and endpoint from a config file, details shown
        """

    @Argument(help: "Directories to upload.", completion: .directory)
    var directories: [String]

    @Flag(
        name: [.customShort("n"), .customShort("t"), .customLong("dry-run")],
        help:
            "Show per file: would-upload / skipped / would-resume / conflict. Writes nothing anywhere. (-t: the original tool's spelling.)")
    var dryRun = false

    @OptionGroup var s3: S3Options

    @OptionGroup var transfer: TransferOptions
    @OptionGroup var ledger: LedgerOption
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let env = ProcessInfo.processInfo.environment
            let config = try ConfigFile.load(explicit: s3.config, environment: env)
            let settings = try s3.settings(environment: env, config: config)
            var options = try transfer.uploadOptions(
                directories: directories, bucket: settings.bucket, urlPrefix: try s3.bucketURL().prefix,
                ledgerFlag: ledger.ledger, environment: env, config: config)
            options.dryRun = dryRun
            debugSettings(console, settings: settings, config: config, upload: options)
            let summary = try await UploadRun.execute(options, settings: settings, console: console)
            return try output.finish(summary, console: console)
        }
    }
}
