import ArgumentParser
import CetiKit
import Foundation

struct GeneralOffload: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "general_offload",
            abstract: "Verified copy of a drone/GoPro/mooring card into staging and a dated backup, after the device-ID check.",
            discussion: """
                The device ID must be one of the registered IDs: the lines of `Device ID List.txt` at the \
                bucket root (cached locally, so an offload without uplink uses the last copy and says how old \
                it is), or of --registry FILE. A near miss is refused (exit 2) with the closest registered IDs.

                Every regular file below SOURCE (sub-folders included; OS litter such as .Trashes, \
                .Spotlight-V100, .fseventsd, System Volume Information, ._* and .DS_Store skipped) is copied to \
                DATA_DIR/backup/<YYYY-MM-DD>/<DEVICE_ID>/ and STAGING_DIR/<DEVICE_ID>/ as <epoch_ms>.<ext> from \
                its birth time (else its mtime); a taken name gets -1, -2, …, nothing is ever overwritten, and \
                names.tsv beside the copies maps every new name to the original path. The source is read once \
                and hashed; each copy is fsynced, dropped from the page cache, read back and compared. The card \
                is never modified. A file whose verified backup under this DATA_DIR/backup/ is in the ledger (and \
                still reads back with the recorded SHA-256) is reported as already saved, and staged again if it \
                is not in S3 and its staging copy is gone; a backup elsewhere (another --data-dir) does not \
                count, so the file is copied here too. The summary names only the folders this run wrote into. \
                A folder or file on the card that cannot be read is reported as failed (the rest is copied).

                Exit status: 0 all copied or already saved, 1 a file failed, 2 usage error (unregistered ID).
                """ + manualExamples(examples))
    }

    static let examples = """
          ceti general_offload -n /media/op/3531-3034 CETI-DJI_MINI2-1            list files and new names (-t too)
          ceti general_offload /media/op/3531-3034 CETI-DJI_MINI2-1 staging/     copy to data/backup/… and staging/
          ceti general_offload --registry ids.txt --data-dir /mnt/ssd /media/op/GOPRO CETI-GOPRO-2    offline ID list
        """

    @Argument(help: "The card's folder, e.g. /media/op/3531-3034.", completion: .directory) var source: String
    @Argument(help: "The device's ID label, e.g. CETI-DJI_MINI2-1.") var deviceID: String
    @Argument(help: "Staging folder (default DATA_DIR/staging).", completion: .directory) var stagingDir: String?

    @Flag(
        name: [.customShort("n"), .customShort("t"), .customLong("dry-run")],
        help: "List files, sizes, new names and what is already saved; writes nothing. (-t: the original tool's spelling.)")
    var dryRun = false
    @Option(
        name: .customLong("data-dir"), help: "Where the backup and the default staging folder go (DATA_DIR/backup, DATA_DIR/staging).",
        completion: .directory) var dataDir = "data"
    @Option(help: "Backup root (default DATA_DIR/backup); the copy goes to BACKUP/<date>/<ID>/.", completion: .directory)
    var backup: String?
    @Option(help: "Use this device-ID list (one ID per line) instead of the bucket's.", completion: .file()) var registry: String?
    @OptionGroup var s3: S3Options
    @OptionGroup var ledger: LedgerOption
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let env = ProcessInfo.processInfo.environment
            let config = try ConfigFile.load(explicit: s3.config, environment: env)
            let devices: DeviceRegistry
            if let registry {
                devices = try DeviceRegistry.fromFile(registry)
            } else {
                let settings = try s3.settings(environment: env, config: config)
                var http = CurlClient.Options()
                http.connections = 1
                http.connectTimeoutSeconds = 10
                // Two quick attempts: offline is normal on the boat, and the cache answers then.
                let service = S3Service(
                    settings: settings, transfer: http, retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.5, maxDelay: 1),
                    console: console)
                defer { service.shutdown() }
                devices = try await DeviceRegistry.fetch(
                    s3: service.store, bucket: settings.bucket,
                    cachePath: DeviceRegistry.cachePath(bucket: settings.bucket, environment: env))
            }
            var options = OffloadOptions(
                source: FileWalker.absolute(source), deviceID: deviceID,
                dataDir: FileWalker.absolute(dataDir), stagingDir: stagingDir.map(FileWalker.absolute),
                ledgerPath: Ledger.resolvePath(flag: ledger.ledger, environment: env, config: config))
            options.dryRun = dryRun
            if let backup { options.backupRoot = FileWalker.absolute(backup) }
            let summary = try OffloadRun.execute(options, registry: devices, console: console)
            return try output.finish(summary, console: console)
        }
    }
}
