import ArgumentParser
import CetiKit
import Foundation

struct Status: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "status",
            abstract: "Show from the ledger what is verified in S3, in flight and failed, per device.",
            discussion: manualExamples(examples).trimmingCharacters(in: .newlines))
    }

    static let examples = """
          ceti status                              per device: pulled, verified in S3, in flight, failed
          ceti status --json | jq .                the same for scripts
          ceti status --ledger /mnt/ssd/ledger.sqlite    another ledger
        """

    @OptionGroup var ledger: LedgerOption
    @OptionGroup var configFile: ConfigOption
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let env = ProcessInfo.processInfo.environment
            let path = Ledger.resolvePath(
                flag: ledger.ledger, environment: env,
                config: try ConfigFile.load(explicit: configFile.config, environment: env))
            let report = try StatusReport.load(ledgerPath: path)
            console.output(output.json ? try JSONOutput.encode(report) : report.text)
            return 0
        }
    }
}
