import ArgumentParser
import CetiKit
import Foundation

@main
struct CetiCommand: AsyncParsableCommand {
    static let examples = """
          ceti whaletag -a                                   pull every tag on the boat's LAN into data/
          ceti compress data/                                FLAC/gzip what was pulled, originals removed with proof
          ceti s3upload -n data/ && ceti s3upload data/      see what would go, then upload
          ceti ingest --clean --bucket s3://ceti-raw/raw     the whole pipeline, tags wiped of what is in S3
        """

    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "ceti",
            abstract: "Move field recordings from whale tags and SD cards to S3 without losing a byte.",
            discussion: """
                Typical order on the boat: whaletag (pull tags) or general_offload (SD cards) → compress → s3upload → \
                qc (did each tag record well?) → whaletag --clean. Every step records what it did in the ledger (ceti status shows it), and \
                nothing is deleted anywhere without the ledger's proof of a verified copy.

                Exit status: 0 success (including nothing to do); 1 some work failed (each failure listed), \
                or the ledger or a disk failed (a damaged or locked ledger, a full disk); 2 usage or \
                configuration error (an unknown flag, a bad value, a missing argument, a wrong config \
                file value); 3 (ingest) uploads queued while S3 could not be reached; 4 (qc, ingest \
                --qc-strict) a device's recording QC verdict is bad; 130 / 143 stopped by SIGINT / SIGTERM \
                after the work in hand (rerun to resume; a second signal stops at once).
                """ + manualExamples(examples),
            version: Ceti.version,
            subcommands: [
                Ingest.self, WhaleTag.self, GeneralOffload.self, Compress.self, S3Upload.self, Verify.self, Restore.self, Watch.self,
                QC.self,
                Status.self,
            ]
        )
    }

    /// Each command's EXAMPLES, by the name its help's USAGE line shows.
    static let examplesByCommand: [String: String] = [
        "ingest": Ingest.examples, "whaletag": WhaleTag.examples, "general_offload": GeneralOffload.examples,
        "compress": Compress.examples, "s3upload": S3Upload.examples, "verify": Verify.examples, "restore": Restore.examples,
        "watch": Watch.examples, "qc": QC.examples,
        "status": Status.examples,
    ]

    /// A help text with its command's EXAMPLES section appended (help text is what ArgumentParser
    /// gives for --help, -h and `ceti help CMD`; its USAGE line names the command).
    static func helpWithExamples(_ help: String) -> String {
        guard let usage = help.range(of: "USAGE: ceti") else { return help }
        let word = help[usage.upperBound...].drop { $0 == " " }.prefix { !$0.isWhitespace }
        let examples = examplesByCommand[String(word)] ?? examples
        var text = help
        while text.hasSuffix("\n") { text.removeLast() }
        return text + "\n\nEXAMPLES:\n" + examples + "\n"
    }

    /// ArgumentParser's own `main()`, except that a usage error the parser finds (an unknown
    /// flag, a value that does not parse, a missing argument), which it would end with 64
    /// (EX_USAGE), exits 2 like every other usage error of ceti. Its message and usage text are
    /// kept; --help, --version and `help CMD` still print to stdout and exit 0.
    ///
    /// SIGINT and SIGTERM stop every command at its next check point (no new file, task or tag;
    /// a download stops between chunks, keeping its .part); the command then returns, and this
    /// prints one line and exits 130 (SIGINT) or 143 (SIGTERM). See `Interrupt`.
    static func main() async {
        Interrupt.install()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            Interrupt.shared.exitIfInterrupted()
            if exitCode(for: error).isSuccess {
                let message = fullMessage(for: error)
                if message.hasPrefix("OVERVIEW:") || message.hasPrefix("USAGE:") {
                    print(helpWithExamples(message))
                    Foundation.exit(0)
                }
            }
            if exitCode(for: error).rawValue == ExitCode.validationFailure.rawValue {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
        Interrupt.shared.exitIfInterrupted()
    }
}

/// Runs a subcommand body and turns CetiKit's errors into one line on stderr and ceti's exit codes.
func runReportingErrors(_ console: Console, _ body: () async throws -> Int32) async throws {
    let status: Int32
    do {
        status = try await body()
    } catch let e as CleanExit {
        throw e
    } catch let e as Interrupted {
        // The executable prints the one line and exits 130/143.
        throw e
    } catch {
        console.error("\(error)")
        status = Ceti.exitStatus(for: error)
    }
    if status != 0 { throw ExitCode(status) }
}

/// The EXAMPLES section for the generated man pages: `generate-manual` reads the commands through
/// `--experimental-dump-help`, which has no place for it but the discussion; --help prints it last
/// instead (see `CetiCommand.helpWithExamples`).
func manualExamples(_ examples: String) -> String {
    guard CommandLine.arguments.contains("--experimental-dump-help") else { return "" }
    return "\n\nEXAMPLES:\n" + examples
}
