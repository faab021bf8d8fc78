import ArgumentParser
import CetiKit
import Foundation

struct Ingest: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "ingest",
            abstract: "The one-shot tag pipeline: discover → pull → compress → upload → backup → (clean), resumable.",
            discussion: """
                Tags (-t, else every tag discovered on the LAN) are pulled in parallel, one SSH session each, \
                into STAGING/<hostname>/ exactly as `whaletag` does. Each file is handed on as soon as the tag's \
                own sha256sum confirms it: raw audio is FLAC-encoded and CSV gzipped as `compress` does \
                (verified, the pulled original removed once its output is recorded), FLAC written by the \
                tag's firmware and every other file go as they are; then it is uploaded as `s3upload` does \
                (verified by ETag, keyed {prefix}/{date}/{device}/{name}), and with --backup copied to \
                DIR/<local date>/<hostname>/ and read back. --max-staging pauses pulling while staging \
                holds more than SIZE not yet uploaded.

                When every file of a tag is verified in S3, the run writes s3://BUCKET/{prefix}/_runs/<run \
                id>/<hostname>/manifest.json (each file's name, size, SHA-256, its FLAC/gzip and the \
                FLAC MD5, the S3 key and ETag), then an empty _COMPLETE next to it. A tag with a failure \
                gets neither in this run; a rerun finishes it. --clean then deletes on the tag only what \
                `whaletag -c` would: files unchanged since they were pulled whose bytes are proven in S3.

                Offline first: when S3 cannot be reached (no uplink), the tags are pulled, verified, \
                compressed and backed up all the same, and each upload waits in the ledger. S3 is asked \
                again with backoff while the run goes on; once every tag is pulled the run waits at most \
                --wait-for-s3 seconds more, then ends with the uploads queued (exit 3) and nothing deleted \
                on the tags (unless --require local). A later `ceti ingest`, even with no tag in reach, \
                uploads the queue and writes the manifests. Refused credentials end the run at once.

                Interrupted at any point (even kill -9), a rerun resumes the same run id: finished work is \
                not redone, no object is written twice and no second _COMPLETE appears.

                Recording QC runs in the same pass as encoding (raw, WAV), gzipping (CSV) or pulling (the \
                tag's FLAC): per channel levels, clipping, DC offset, dead channels and stuck samples; gaps \
                between recordings from their <epoch_ms> names; sensor CSV header, rows, timestamps, ranges \
                and frozen columns. Each tag's verdict (ok, warn or bad, thresholds in the config file's \
                qc: section) is printed before --clean acts and written into its manifest; it never changes \
                what is deleted. `ceti qc --run ID --html F` draws it.

                Exit status: 0 all done, 1 a tag or file failed (each listed), 2 usage/configuration error \
                or refused credentials, 4 (with --qc-strict) a tag's QC verdict is bad and nothing failed, \
                3 done locally with uploads queued for S3.
                """ + manualExamples(examples))
    }

    static let examples = """
          ceti ingest -n --bucket ceti-raw                   what would be pulled from every tag found; writes nothing
          ceti ingest --bucket s3://ceti-raw/raw --clean     every tag: pull, compress, upload, manifest, wipe
          ceti ingest -t wt-1a2b3c4d --backup /mnt/ssd --max-staging 20G    one tag, a local copy kept too
        """

    @Option(
        name: [.customShort("t"), .long],
        help: "Only this tag: hostname or address, optionally :PORT; repeatable. Default: every tag discovered.")
    var tag: [String] = []
    @Flag(help: "Wipe each tag of the files proven uploaded (the rules of whaletag -c), after its manifest is complete.")
    var clean = false
    @Flag(name: .customLong("qc-strict"), help: "Exit 4 when a tag's recording QC verdict is bad (and nothing failed).")
    var qcStrict = false
    @Option(help: "Also keep verified copies of the uploaded files in DIR/<local date>/<hostname>/.", completion: .directory)
    var backup: String?
    @Option(name: .customLong("max-staging"), help: "Pause pulling while staging holds more than this not yet uploaded, e.g. 20G.")
    var maxStaging: String?
    @Option(help: "Where pulled and compressed files wait, in <hostname>/ folders.", completion: .directory)
    var staging = "staging"
    @Flag(name: [.customShort("n"), .customLong("dry-run")], help: "Show what would be pulled; writes nothing.")
    var dryRun = false
    @Option(name: .customLong("tag-jobs"), help: "Tags pulled in parallel.")
    var tagJobs = 4
    @Option(name: .customLong("compress-jobs"), help: "Files compressed in parallel (default: the number of cores).")
    var compressJobs: Int?
    @Option(
        name: .customLong("wait-for-s3"),
        help: ArgumentHelp(
            "When S3 cannot be reached: how long to wait for it once every tag is pulled, before ending with the uploads queued (exit 3; default 300).",
            valueName: "seconds"))
    var waitForS3 = 300

    @OptionGroup(title: "Tags") var login: TagLoginOptions
    @OptionGroup(title: "Compression") var compression: CompressionOptions
    @OptionGroup(title: "S3") var s3: S3Options
    @OptionGroup(title: "Upload") var transfer: TransferOptions
    @OptionGroup var ledger: LedgerOption
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            guard (1...64).contains(tagJobs) else { throw UsageError("--tag-jobs \(tagJobs): give a number from 1 to 64") }
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let cj = compressJobs ?? cores
            guard (1...64).contains(cj) else { throw UsageError("--compress-jobs \(cj): give a number from 1 to 64") }
            let env = ProcessInfo.processInfo.environment
            let config = try ConfigFile.load(explicit: s3.config, environment: env)
            let settings = try s3.settings(environment: env, config: config)
            var pull = try login.pullOptions(dataDir: staging, ledgerFlag: ledger.ledger, environment: env, config: config)
            pull.jobs = tagJobs
            var compress = CompressOptions(directories: [], ledgerPath: pull.ledgerPath, jobs: cj)
            try compression.apply(to: &compress, config: config)
            let upload = try transfer.uploadOptions(
                directories: [], bucket: settings.bucket, urlPrefix: try s3.bucketURL().prefix,
                ledgerFlag: ledger.ledger, environment: env, config: config)
            var options = IngestOptions(pull: pull, compress: compress, upload: upload)
            options.targets = tag
            options.subnets = tag.isEmpty ? try WhaleTagRun.subnets(login.subnet) : []
            options.clean = clean
            options.dryRun = dryRun
            options.qcStrict = qcStrict
            guard (0...86_400).contains(waitForS3) else { throw UsageError("--wait-for-s3 \(waitForS3): give seconds from 0 to 86400") }
            options.s3Patience = Double(waitForS3)
            options.backupDir = backup.map(FileWalker.absolute)
            debugSettings(console, settings: settings, config: config, upload: upload)
            if let text = maxStaging {
                guard let size = ByteSize.parse(text), size > 0 else {
                    throw UsageError("--max-staging \(text): give a size, e.g. 20G or 500M")
                }
                options.maxStaging = size
            }
            let summary = try await IngestRun.execute(options, settings: settings, console: console)
            return try output.finish(summary, console: console)
        }
    }
}
