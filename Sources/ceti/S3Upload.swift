import ArgumentParser
import CetiKit
import Foundation

struct S3Upload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
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
            """)

    @Argument(help: "Directories to upload.")
    var directories: [String]

    @Flag(name: [.customShort("t"), .customLong("dry-run")],
          help: "Show per file: would-upload / skipped / would-resume / conflict. Writes nothing anywhere.")
    var dryRun = false

    @OptionGroup var s3: S3Options

    @Option(help: "Key prefix (default raw).")
    var prefix: String?
    @Option(name: .customLong("key-template"), help: "Key template; placeholders {prefix} {date} {device} {path} {name} (default {prefix}/{date}/{device}/{path}).")
    var keyTemplate: String?
    @Option(name: .shortAndLong, help: "Parallel transfers (default 4).")
    var jobs: Int?
    @Option(name: .customLong("part-size"), help: "Multipart part size, 5MiB to 5GiB (default 8MiB); grows so no object needs more than 10,000 parts.")
    var partSize: String?
    @Option(help: "Cap the total upload rate in bytes/s, e.g. 500k or 2M (k, M, G are powers of 1024).")
    var bwlimit: String?
    @Option(name: .customLong("stall-timeout"), help: "Give up on a request (and retry it) after this many seconds with no byte moving (default 60).")
    var stallTimeout: Int?
    @Flag(help: "Replace a remote object whose content differs (default: refuse and report a conflict).")
    var overwrite = false
    @OptionGroup var ledger: LedgerOption
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let env = ProcessInfo.processInfo.environment
            let config = try ConfigFile.load(explicit: s3.config, environment: env)
            let settings = try S3Settings.resolve(s3.flags, environment: env, config: config)
            var options = UploadOptions(
                directories: directories, bucket: settings.bucket,
                keyTemplate: try KeyTemplate(keyTemplate ?? config["key_template"] ?? KeyTemplate.default),
                ledgerPath: Ledger.resolvePath(flag: ledger.ledger, environment: env, config: config))
            options.prefix = prefix ?? config["prefix"] ?? options.prefix
            options.dryRun = dryRun
            options.overwrite = overwrite
            if let j = jobs ?? config["jobs"].flatMap({ Int($0) }) {
                guard (1...64).contains(j) else { throw UsageError("--jobs \(j): give a number from 1 to 64") }
                options.jobs = j
            }
            if let text = partSize ?? config["part_size"] {
                guard let size = ByteSize.parse(text), size >= PartLayout.minPartSize, size <= PartLayout.maxPartSize else {
                    throw UsageError("--part-size \(text): give a size from 5MiB to 5GiB, e.g. 8MiB or 64M")
                }
                options.partSize = size
            }
            if let text = bwlimit ?? config["bwlimit"] {
                guard let rate = ByteSize.parse(text), rate >= 1024 else {
                    throw UsageError("--bwlimit \(text): give a rate of at least 1k, e.g. 500k or 2M (bytes per second)")
                }
                options.bytesPerSecond = rate
            }
            if let s = stallTimeout {
                guard (1...3600).contains(s) else { throw UsageError("--stall-timeout \(s): give seconds from 1 to 3600") }
                options.stallSeconds = s
            }
            let summary = try await UploadRun.execute(options, settings: settings, console: console)
            return try output.finish(summary, console: console)
        }
    }
}
