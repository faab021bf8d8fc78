import ArgumentParser
import CetiKit
import Foundation

struct WhaleTag: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "whaletag",
            abstract: "Pull whale tags' /data over SFTP, verified and resumable.",
            discussion: """
                Each tag is pulled over one SSH session (tags in parallel): the top-level regular files of \
                its data folder, never folders or links. A file modified in the last minute (by the tag's \
                clock) is still being written: reported, not pulled. Files land in DATA_DIR/<hostname>/, \
                first as <name>.part (an interrupted pull resumes there), hashed while they arrive, checked \
                against the tag's own sha256sum, then renamed and recorded in the ledger. A file whose \
                verified copy is in the ledger is not pulled again.

                Host keys are trusted on first use and pinned per tag name in \
                $XDG_CONFIG_HOME/ceti/known_hosts; a changed key stops that tag.

                -c deletes on the tag, file by file, only what the ledger proves safe: unchanged since it \
                was pulled (size, mtime, and the tag's own SHA-256), and its own bytes — this tag's pulled \
                copy, or the FLAC/gzip made of it — verified in S3 in the bucket given (--bucket, \
                CETI_BUCKET or the config file), where a HEAD made just before the delete still finds the \
                object with the recorded size and ETag (--require uploaded, the default); or its own \
                verified local copy, hashed again (--require local). Another tag's identical file, another \
                bucket's object or an object since deleted proves nothing. Never a folder, never a file the \
                ledger does not know; nothing at all after an error on that tag. With --dry-run it only \
                shows what it would delete.

                Discovery (-l, -a) connects to the SSH port of every address of each up IPv4 interface's \
                network (the /24 around the address when the network is wider than /22) and around each \
                default gateway, or of the --subnet networks; keeps hosts that answer with an SSH banner; \
                learns each one's name (reverse lookup or mDNS; `hostname` after logging in only when no \
                name can be learned); logs in with the tag password only to hosts named wt-<6 or more \
                lowercase hex/alphanumerics>, hosts presenting a key pinned to a tag, or nameless hosts — \
                never to a host with another name; and connects by the address it found. A tag that \
                refuses the login or shows a changed host key is listed with its reason (exit 1).

                The original tool's spellings work: -ca (-c -a: pull and clean every tag), -ct HOST \
                (-c -t HOST: pull and clean one tag).

                Exit status: 0 all pulled or skipped, 1 a tag or file failed, 2 usage/configuration error.
                """ + manualExamples(examples))
    }

    static let examples = """
          ceti whaletag -l                         list the tags on the LAN: files, bytes, pulled, uploaded
          ceti whaletag -a                         pull every tag into data/<hostname>/
          ceti whaletag -n -t wt-1a2b3c4d          what would be pulled from one tag; writes nothing
          ceti whaletag -ca --bucket ceti-raw      pull all, then wipe each tag of what is verified in S3
        """

    @Flag(
        name: .shortAndLong,
        help: "Discover and list tags: hostname, address, files and bytes in the data folder, how many already pulled / uploaded.")
    var list = false
    @Flag(name: .shortAndLong, help: "Discover, then pull every tag.")
    var all = false
    @Option(name: [.customShort("t"), .long], help: "Pull this tag: hostname or address, optionally :PORT; repeatable.")
    var tag: [String] = []
    @Flag(name: .shortAndLong, help: "After pulling, delete on the tag the files proven safe (see --require).")
    var clean = false
    @Option(
        help: "What -c needs before deleting a file: uploaded (a verified S3 object holds its bytes) or local (a verified local copy).",
        completion: .list(["uploaded", "local"]))
    var require: String = "uploaded"

    @Option(
        name: [.customLong("staging"), .customLong("data-dir")],
        help: "Where pulled files land, in <hostname>/ folders (the staging folder of ingest; --data-dir is the old name).",
        completion: .directory)
    var dataDir = "data"
    @OptionGroup var login: TagLoginOptions
    @Flag(
        name: [.customShort("n"), .customLong("dry-run")],
        help: "Show what would be pulled (with -c, what would be deleted); writes nothing.")
    var dryRun = false
    @Option(
        name: .customLong("tag-jobs"),
        help: "Tags pulled in parallel, one SSH session each (default 4). As in ingest; -j counts files elsewhere.")
    var tagJobs = 4
    @OptionGroup(title: "S3 (for -c: where the files' objects must be)") var s3: S3Options
    @OptionGroup var ledger: LedgerOption
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let console = output.console
        try await runReportingErrors(console) {
            guard let proof = CleanProof(rawValue: require) else {
                throw UsageError("--require \(require): give uploaded or local")
            }
            guard list || all || !tag.isEmpty else {
                throw UsageError("say what to do: -l (list tags), -a (pull all tags) or -t HOST (pull one tag)")
            }
            if list && (all || !tag.isEmpty || clean) { throw UsageError("-l only lists: use it without -a, -t or -c") }
            guard (1...64).contains(tagJobs) else { throw UsageError("--tag-jobs \(tagJobs): give a number from 1 to 64") }
            let env = ProcessInfo.processInfo.environment
            let config = try ConfigFile.load(explicit: s3.config, environment: env)
            var options = try login.pullOptions(dataDir: dataDir, ledgerFlag: ledger.ledger, environment: env, config: config)
            options.dryRun = dryRun
            options.jobs = tagJobs
            options.clean = clean
            options.require = proof
            if list {
                let tags = try await WhaleTagRun.list(subnets: try WhaleTagRun.subnets(login.subnet), options: options, console: console)
                console.output(output.json ? try JSONOutput.encode(tags) : WhaleTagRun.listText(tags))
                return tags.contains { $0.problem != nil } ? 1 : 0
            }
            // Only cleaning by upload proof needs S3: a pull works with no uplink at all.
            let settings = clean && proof == .uploaded ? try s3.settings(environment: env, config: config) : nil
            let summary = try await WhaleTagRun.pull(
                targets: tag, discovering: all ? try WhaleTagRun.subnets(login.subnet) : nil,
                options: options, s3: settings, console: console)
            return try output.finish(summary, console: console)
        }
    }
}
