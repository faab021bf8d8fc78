import ArgumentParser
import CetiKit
import Foundation

@main
struct CetiCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ceti",
        abstract: "Move field recordings from whale tags and SD cards to S3 without losing a byte.",
        discussion: """
            Typical order on the boat: whaletag (pull tags) or general_offload (SD cards) → compress → s3upload → \
            whaletag --clean. Every step records what it did in the ledger (ceti status shows it), and \
            nothing is deleted anywhere without the ledger's proof of a verified copy.

            Exit status: 0 success (including nothing to do); 1 some work failed (each failure listed), \
            or the ledger or a disk failed (a damaged or locked ledger, a full disk); 2 usage or \
            configuration error (an unknown flag, a bad value, a missing argument, a wrong config \
            file value); 130 / 143 stopped by SIGINT / SIGTERM after the work in hand (rerun to resume; \
            a second signal stops at once).
            """,
        version: Ceti.version,
        subcommands: [Ingest.self, WhaleTag.self, GeneralOffload.self, Compress.self, S3Upload.self, Status.self]
    )

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
