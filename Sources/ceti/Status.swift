import ArgumentParser
import CetiKit
import Foundation

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show from the ledger what is verified in S3, in flight and failed, per device.")

    @OptionGroup var ledger: LedgerOption
    @Option(help: "Config file (default $XDG_CONFIG_HOME/ceti/config.yaml).")
    var config: String?
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let env = ProcessInfo.processInfo.environment
            let path = Ledger.resolvePath(flag: ledger.ledger, environment: env,
                                          config: try ConfigFile.load(explicit: config, environment: env))
            let report = try StatusReport.load(ledgerPath: path)
            console.output(output.json ? try JSONOutput.encode(report) : report.text)
            return 0
        }
    }
}
