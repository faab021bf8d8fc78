import ArgumentParser
import CetiKit

/// How much ceti says, shared by every subcommand.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON document on stdout instead of text.")
    var json = false
    @Flag(name: .shortAndLong, help: "Print only errors.")
    var quiet = false
    @Flag(name: .shortAndLong, help: "Also print skipped files, retries and other details.")
    var verbose = false

    var console: Console {
        Console(verbosity: quiet ? .quiet : verbose ? .verbose : .normal, json: json)
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
    @Option(help: "Ledger file (default $CETI_LEDGER, else `ledger:` in the config file, else $XDG_DATA_HOME/ceti/ledger.sqlite).")
    var ledger: String?
}

/// Where S3 is and who we are there, shared by s3upload and general_offload.
struct S3Options: ParsableArguments {
    @Option(help: "Bucket to upload to (else CETI_BUCKET, else `bucket:` in the config file).")
    var bucket: String?
    @Option(name: .customLong("endpoint-url"), help: "S3-compatible endpoint, e.g. http://127.0.0.1:8333 (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; default AWS).")
    var endpointURL: String?
    @Option(help: "Region (else AWS_REGION / AWS_DEFAULT_REGION / the profile's; default us-east-1).")
    var region: String?
    @Option(help: "AWS profile in ~/.aws/credentials and ~/.aws/config (else AWS_PROFILE, else default).")
    var profile: String?
    @Option(help: "Config file (default $XDG_CONFIG_HOME/ceti/config.yaml).")
    var config: String?

    var flags: S3Settings.Flags {
        S3Settings.Flags(bucket: bucket, endpointURL: endpointURL, region: region, profile: profile)
    }
}
