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

            Exit status: 0 success (including nothing to do), 1 some work failed (each failure listed), \
            2 usage or configuration error.
            """,
        version: Ceti.version,
        subcommands: [Ingest.self, WhaleTag.self, GeneralOffload.self, Compress.self, S3Upload.self, Status.self]
    )
}

/// Runs a subcommand body and turns CetiKit's errors into one line on stderr and ceti's exit codes.
func runReportingErrors(_ console: Console, _ body: () async throws -> Int32) async throws {
    let status: Int32
    do {
        status = try await body()
    } catch let e as CleanExit {
        throw e
    } catch {
        console.error("\(error)")
        status = Ceti.exitStatus(for: error)
    }
    if status != 0 { throw ExitCode(status) }
}
