import ArgumentParser
import CetiKit

/// How much ceti says, shared by every subcommand.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON document on stdout instead of text.")
    var json = false
    @Flag(name: .shortAndLong, help: "Print only errors.")
    var quiet = false
    @Flag(
        name: .shortAndLong,
        help:
            "Also print skipped files, retries and other details (-v); -vv also the settings in force (endpoint, bucket, prefix, ledger, config file, limits) and one line per S3 request and SSH step."
    )
    var verbose: Int
    @Option(
        name: .customLong("log-file"), help: "Also append every line this run prints, time-stamped, to FILE (created 0600).",
        completion: .file())
    var logFile: String?

    func validate() throws {
        if let logFile, let problem = Console.logFileProblem(logFile) {
            throw ValidationError("--log-file \(logFile): \(problem); give a file ceti can append to")
        }
    }

    var console: Console {
        Console(
            verbosity: quiet ? .quiet : verbose >= 2 ? .debug : verbose == 1 ? .verbose : .normal, json: json,
            logFile: logFile)
    }

    /// Prints the run's summary (its JSON document with --json, nothing with --quiet) and
    /// returns its exit status.
    func finish(_ summary: some RunSummary, console: Console) throws -> Int32 {
        if json {
            console.output(try JSONOutput.encode(summary))
        } else if !quiet {
            console.output(summary.line)
        }
        return summary.exitCode
    }
}

/// The ledger's location, shared by every subcommand that reads or writes it.
struct LedgerOption: ParsableArguments {
    @Option(
        help: "Ledger file (default $CETI_LEDGER, else `ledger:` in the config file, else $XDG_DATA_HOME/ceti/ledger.sqlite).",
        completion: .file())
    var ledger: String?
}

/// The config file's location, for the commands that take no S3 options (compress).
struct ConfigOption: ParsableArguments {
    @Option(help: "Config file (default $XDG_CONFIG_HOME/ceti/config.yaml).", completion: .file(extensions: ["yaml", "yml"]))
    var config: String?
}

/// Where S3 is and who we are there, shared by s3upload and general_offload.
struct S3Options: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Bucket: NAME or s3://NAME/PREFIX, whose PREFIX stands in for --prefix (else CETI_BUCKET, else `bucket:` in the config file).",
            valueName: "bucket"))
    var bucket: String?
    @OptionGroup var connection: S3ConnectionOptions

    var config: String? { connection.config }

    /// --bucket split into the bucket's name and, for s3://NAME/PREFIX, the prefix (nil when none).
    /// A plain name is kept as it is; `s3://` with no bucket name is a usage error.
    func bucketURL() throws -> (name: String?, prefix: String?) {
        guard let bucket, bucket.lowercased().hasPrefix("s3://") else { return (bucket, nil) }
        let rest = bucket.dropFirst(5)
        let name = rest.prefix { $0 != "/" }
        guard !name.isEmpty else {
            throw UsageError("--bucket \(bucket): no bucket name; give s3://BUCKET or s3://BUCKET/PREFIX, or a plain bucket name")
        }
        let path = rest.dropFirst(name.count).split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        return (String(name), path.isEmpty ? nil : path)
    }

    /// The S3 settings in force: these flags, then the environment, then the config file.
    func settings(environment: [String: String], config: ConfigFile) throws -> S3Settings {
        try S3Settings.resolve(try flags(), environment: environment, config: config)
    }

    /// The flags for `S3Settings.resolve`, with --bucket s3://NAME/PREFIX reduced to NAME.
    func flags() throws -> S3Settings.Flags {
        connection.flags(bucket: try bucketURL().name)
    }
}

/// How to reach S3, without the bucket (restore takes its bucket from the manifest).
struct S3ConnectionOptions: ParsableArguments {
    @Option(
        name: .customLong("endpoint-url"),
        help: "S3-compatible endpoint, e.g. http://127.0.0.1:8333 (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; default AWS).")
    var endpointURL: String?
    @Option(help: "Region (else AWS_REGION / AWS_DEFAULT_REGION / the profile's; default us-east-1).")
    var region: String?
    @Option(help: "AWS profile in ~/.aws/credentials and ~/.aws/config (else AWS_PROFILE, else default).")
    var profile: String?
    @Option(help: "Config file (default $XDG_CONFIG_HOME/ceti/config.yaml).", completion: .file(extensions: ["yaml", "yml"]))
    var config: String?

    func flags(bucket: String?) -> S3Settings.Flags {
        S3Settings.Flags(bucket: bucket, endpointURL: endpointURL, region: region, profile: profile)
    }
}

/// How to reach and log in to tags, shared by whaletag and ingest.
struct TagLoginOptions: ParsableArguments {
    @Option(help: "Scan this IPv4 network instead of the automatic ones (e.g. 192.168.1.0/24); repeatable.")
    var subnet: [String] = []
    @Option(help: "SSH port.")
    var port = 22
    @Option(help: "Login user.")
    var user = "pi"
    @Option(
        name: .customLong("password-file"), help: "File holding the tags' password (else CETI_TAG_PASSWORD, else the factory password).",
        completion: .file())
    var passwordFile: String?
    @Option(help: "Private key to log in with (ed25519).", completion: .file())
    var identity: String?
    @Option(name: .customLong("remote-dir"), help: "The tag's data folder.")
    var remoteDir = "/data"
    @Option(name: .customLong("accept-new-host-key"), help: "Accept and pin a changed host key for this tag (after a reflash); repeatable.")
    var acceptNewHostKey: [String] = []
    @Flag(
        name: .customLong("stop-capture"),
        help:
            "Stop the tag's capture service (sudo systemctl stop ceti-tag-data-capture) before pulling, and start it again after; a timer armed on the tag first (sudo systemd-run) starts it again within --capture-grace if ceti cannot."
    )
    var stopCapture = false
    @Option(
        name: .customLong("capture-grace"),
        help: ArgumentHelp(
            "With --stop-capture: seconds after which a timer armed on the tag starts the recorder again if ceti cannot (killed, link lost); renewed while the pull goes on.",
            valueName: "seconds"))
    var captureGrace = 600
    @Flag(name: .customLong("no-remote-verify"), help: "Do not confirm copies with the tag's own sha256sum.")
    var noRemoteVerify = false

    /// Pull options with everything but the run's own switches (dry run, clean, jobs) filled in.
    func pullOptions(dataDir: String, ledgerFlag: String?, environment env: [String: String], config: ConfigFile) throws -> PullOptions {
        try TagPassword.checkIdentity(identity)
        var options = PullOptions(
            dataDir: FileWalker.absolute(dataDir),
            login: SSHLogin(user: user, password: try TagPassword.resolve(file: passwordFile, environment: env), identity: identity),
            knownHostsPath: KnownHosts.defaultPath(environment: env),
            ledgerPath: Ledger.resolvePath(flag: ledgerFlag, environment: env, config: config))
        options.remoteDir = remoteDir
        options.port = port
        options.acceptNewHostKey = Set(acceptNewHostKey)
        options.remoteVerify = !noRemoteVerify
        options.stopCapture = stopCapture
        guard captureGrace >= 1 else {
            throw UsageError("--capture-grace \(captureGrace): give a number of seconds, at least 1 (default 600)")
        }
        options.captureGraceSeconds = captureGrace
        return options
    }
}

/// Raw audio layout and compression levels, shared by compress and ingest.
/// The layout of raw audio when neither its name nor the tag's data_config gives it.
struct RawLayoutOptions: ParsableArguments {
    @Option(help: "Raw audio: channels.") var channels = 3
    @Option(help: "Raw audio: bits per sample, 16 or 24.", completion: .list(["16", "24"])) var bps = 16
    @Option(name: .customLong("sample-rate"), help: "Raw audio: sample rate in Hz.") var sampleRate = 96_000
    @Option(help: "Raw audio: byte order, big or little.", completion: .list(["big", "little"])) var endian = "big"
    @Option(help: "Raw audio: signed or unsigned samples.", completion: .list(["signed", "unsigned"])) var sign = "signed"

    func format() throws -> RawFormat {
        guard endian == "big" || endian == "little" else { throw UsageError("--endian \(endian): give big or little") }
        guard sign == "signed" || sign == "unsigned" else { throw UsageError("--sign \(sign): give signed or unsigned") }
        return RawFormat(
            channels: channels, bitsPerSample: bps, sampleRate: sampleRate, bigEndian: endian == "big", signed: sign == "signed")
    }
}

struct CompressionOptions: ParsableArguments {
    @OptionGroup var layout: RawLayoutOptions
    @Option(help: "FLAC compression level, 0 (fastest) to 8 (smallest).") var level = 5
    @Option(name: .customLong("gzip-level"), help: "gzip compression level, 1 to 9.") var gzipLevel = 6
    @Flag(
        name: .customLong("no-qc"),
        help: "No recording QC (levels, clipping, dead channels, sensor checks) while encoding; thresholds: config `qc:`.")
    var noQC = false

    func apply(to options: inout CompressOptions, config: ConfigFile) throws {
        options.raw = try layout.format()
        guard (0...8).contains(level) else { throw UsageError("--level \(level): give 0 to 8") }
        guard (1...9).contains(gzipLevel) else { throw UsageError("--gzip-level \(gzipLevel): give 1 to 9") }
        options.flacLevel = level
        options.gzipLevel = gzipLevel
        options.qc = noQC ? nil : try QCThresholds.load(config)
    }
}

/// How objects are keyed and sent, shared by s3upload and ingest.
struct TransferOptions: ParsableArguments {
    @Option(help: "Key prefix (default raw); --bucket s3://NAME/PREFIX gives it too.")
    var prefix: String?
    @Option(
        name: .customLong("key-template"),
        help: "Key template; placeholders {prefix} {date} {device} {path} {name} (default {prefix}/{date}/{device}/{path}).")
    var keyTemplate: String?
    @Option(
        name: .customLong("part-size"),
        help: "Multipart part size, 5MiB to 5GiB (default 8MiB); grows so no object needs more than 10,000 parts.")
    var partSize: String?
    @Option(
        help:
            "Cap the total upload rate in bytes/s, e.g. 500k or 2M (k, M, G are powers of 1024), or by time of day, e.g. \"06:00,1M 22:00,off\" (local time); off for no limit (also over the config file's).",
        completion: .list(["off", "500k", "1M", "2M", "10M"]))
    var bwlimit: String?
    @Option(
        name: .customLong("stall-timeout"),
        help:
            "Give up on a request (and retry it) after this many seconds with no byte moving, also before the first response byte (default 60). Each request has 8 attempts, so a silent endpoint costs at most about 8 × this + 62 s of backoff."
    )
    var stallTimeout: Int?
    @Option(
        name: .shortAndLong,
        help:
            "Files sent to S3 at once (default 8; files up to 1 MiB count half, so 16 of them go at once; large files take half as many slots' worth of parts, so at most 4 of them at once by default)."
    )
    var jobs: Int?
    @Flag(help: "Replace a remote object whose content differs (default: refuse and report a conflict).")
    var overwrite = false

    /// Upload options from these flags, else the config file, else the defaults.
    /// `urlPrefix` is the PREFIX of --bucket s3://NAME/PREFIX: it stands in for --prefix (giving
    /// a different --prefix as well is a usage error).
    func uploadOptions(
        directories: [String], bucket: String, urlPrefix: String? = nil, ledgerFlag: String?,
        environment env: [String: String], config: ConfigFile
    ) throws -> UploadOptions {
        let template: KeyTemplate
        if let keyTemplate {
            template = try KeyTemplate(keyTemplate)
        } else if let text = try config.string("key_template") {
            do { template = try KeyTemplate(text) } catch let e as KeyTemplate.TemplateError {
                throw config.invalid(
                    "key_template",
                    "\(e)".replacingOccurrences(of: "--key-template: ", with: "")
                        .replacingOccurrences(of: "--key-template ", with: ""))
            }
        } else {
            template = try KeyTemplate(KeyTemplate.default)
        }
        var options = UploadOptions(
            directories: directories, bucket: bucket, keyTemplate: template,
            ledgerPath: Ledger.resolvePath(flag: ledgerFlag, environment: env, config: config))
        if let urlPrefix, let prefix, prefix != urlPrefix {
            throw UsageError("--prefix \(prefix) and --bucket s3://\(bucket)/\(urlPrefix) name two prefixes: give one of them")
        }
        options.prefix = try urlPrefix ?? prefix ?? config.string("prefix") ?? options.prefix
        options.overwrite = overwrite
        if let j = jobs {
            guard (1...64).contains(j) else { throw UsageError("--jobs \(j): give a number from 1 to 64") }
            options.jobs = j
        } else if let j = try config.int("jobs") {
            guard (1...64).contains(j) else { throw config.invalid("jobs", "\(j) is out of range; give a number from 1 to 64") }
            options.jobs = j
        }
        if let text = partSize {
            guard let size = ByteSize.parse(text), size >= PartLayout.minPartSize, size <= PartLayout.maxPartSize else {
                throw UsageError("--part-size \(text): give a size from 5MiB to 5GiB, e.g. 8MiB or 64M")
            }
            options.partSize = size
        } else if let text = try config.string("part_size") {
            guard let size = ByteSize.parse(text), size >= PartLayout.minPartSize, size <= PartLayout.maxPartSize else {
                throw config.invalid("part_size", "\(text) is not a size from 5MiB to 5GiB; give e.g. 8MiB or 64M")
            }
            options.partSize = size
        }
        if let text = bwlimit {
            do { options.bandwidth = try BandwidthSchedule.parse(text) } catch { throw UsageError("--bwlimit \(error)") }
        } else if let text = try config.string("bwlimit") {
            do { options.bandwidth = try BandwidthSchedule.parse(text) } catch {
                throw config.invalid("bwlimit", "\(error)")
            }
        }
        if let s = stallTimeout {
            guard (1...3600).contains(s) else { throw UsageError("--stall-timeout \(s): give seconds from 1 to 3600") }
            options.stallSeconds = s
        }
        return options
    }

}

/// With -vv: the settings in force, one per line, before the run starts.
func debugSettings(_ console: Console, settings: S3Settings, config: ConfigFile, upload: UploadOptions) {
    console.debug("config file: \(config.path ?? "none")")
    console.debug("endpoint: \(settings.endpoint), region \(settings.region), bucket \(settings.bucket), prefix \(upload.prefix)")
    console.debug("ledger: \(upload.ledgerPath)")
    console.debug(
        "jobs \(upload.jobs), part size \(upload.partSize) bytes, bwlimit \(upload.bandwidth?.description ?? "off"), stall timeout \(upload.stallSeconds) s"
    )
}
