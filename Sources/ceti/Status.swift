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
          ceti status                              per device: pulled, in S3, in flight, failed
          ceti status --json | jq .                the same for scripts
          ceti status --files --device wt-0a1b2c3d each file: copy, derivative, S3, backup
          ceti status --pending                    the files S3 does not hold yet
        """

    @Flag(help: "One line per file: its local copy, derivative, verified S3 object and backup, or what is missing.")
    var files = false
    @Flag(help: "Only the files without a verified S3 object of their own (implies --files).")
    var pending = false
    @Option(help: "Only this device (its hostname or card name).")
    var device: String?

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
            let report = try StatusReport.load(ledgerPath: path, files: files, pending: pending, device: device)
            console.output(output.json ? try JSONOutput.encode(report) : report.text)
            return 0
        }
    }
}
