import ArgumentParser
import CetiKit
import Foundation

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show from the ledger what is verified in S3, in flight and failed, per device.")

    @Option(help: "Ledger file (default $CETI_LEDGER, else $XDG_DATA_HOME/ceti/ledger.sqlite).")
    var ledger: String?
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let env = ProcessInfo.processInfo.environment
            let path = ledger ?? Ledger.defaultPath(environment: env)
            let report = try StatusReport.load(ledgerPath: path)
            console.output(output.json ? try JSONOutput.encode(report) : report.text)
            return 0
        }
    }
}
