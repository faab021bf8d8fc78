import ArgumentParser
import CetiKit
import Foundation

struct WatchTestNotify: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "test-notify",
            abstract: "Send a test notification to the webhook and e-mail the config file names.",
            discussion: """
                Reads watch.notify from the config file and sends one `test` event to each channel it names, \
                as `ceti watch` sends its events: the webhook gets a JSON POST (event, session, root, files, \
                bytes, manifest, errors, text, host, at), the recipients an e-mail through the SMTP server. \
                One line per channel says delivered, or failed and why. The webhook URL and the SMTP password \
                are never shown or logged.

                Exit status: 0 every channel delivered, 1 a channel failed, 2 usage or configuration error \
                (including a config file whose watch.notify names no webhook and no e-mail).
                """ + manualExamples(examples))
    }

    static let examples = """
          ceti watch test-notify                                        the default config file's channels
          ceti watch test-notify --config /etc/ceti/config.yaml         another config file
          ceti watch test-notify -vv --log-file /var/log/ceti.log       and keep every line in a log
        """

    @Option(help: "Config file (default $XDG_CONFIG_HOME/ceti/config.yaml).", completion: .file(extensions: ["yaml", "yml"]))
    var config: String?
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            let file = try ConfigFile.load(explicit: config, environment: ProcessInfo.processInfo.environment)
            let watch: WatchConfig
            do { watch = try WatchConfig.load(file) } catch let e as WatchConfig.Invalid { throw UsageError(e.description) }
            let notifier = Notifier(settings: watch.notify ?? NotifySettings(), console: console)
            guard !notifier.channelNames.isEmpty else {
                throw UsageError(
                    "config file \(file.path ?? "(none)"): watch.notify names no channel; give webhook_file (or webhook) "
                        + "and/or email: {smtp_url, from, to}")
            }
            console.debug("config file: \(file.path ?? "none")")
            console.debug("channels: \(notifier.channelNames.joined(separator: "; "))")
            return try output.finish(await notifier.test(), console: console)
        }
    }
}
