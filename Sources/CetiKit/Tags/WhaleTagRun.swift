import Foundation

/// `ceti whaletag -t HOST...`: pulls tags in parallel, one SSH session and one thread each.
public enum WhaleTagRun {
    public struct Summary: Sendable, Codable {
        public var dryRun: Bool
        public var tags: [TagPullReport]
        public var seconds: Double

        public var exitCode: Int32 { tags.contains(where: \.failed) ? 1 : 0 }

        public var line: String {
            let files = tags.flatMap(\.files)
            func n(_ a: PullOutcome.Action) -> Int { files.filter { $0.action == a }.count }
            let bytes = files.reduce(0) { $0 + $1.bytesReceived }
            // Tags that failed as a whole (unreachable, refused, a changed key); a file that could
            // not be pulled is counted with the files, never as a tag.
            let failedTags = tags.filter { $0.error != nil }.count
            let cleaned = tags.flatMap(\.cleaned)
            let cleanPart =
                cleaned.isEmpty
                ? ""
                : "; on the tags: \(cleaned.filter { $0.action != .kept }.count) "
                    + (dryRun ? "to delete" : "deleted") + ", \(cleaned.filter { $0.action == .kept }.count) kept"
            return "\(tags.count) tag(s)\(failedTags > 0 ? " (\(failedTags) unreachable or refused)" : ""): "
                + (dryRun ? "\(n(.wouldPull)) to pull, " : "\(n(.pulled)) pulled, \(n(.resumed)) resumed, ")
                + "\(n(.skipped)) already pulled, \(n(.stillWriting)) still being written, \(n(.failed)) failed; "
                + "\(ByteSize.format(bytes)) received in \(String(format: "%.1f", seconds)) s" + cleanPart
        }
    }

    /// The networks `-l` and `-a` scan: `--subnet`s when given, else the automatic ones.
    public static func subnets(_ cidrs: [String]) throws -> [Subnet] {
        guard !cidrs.isEmpty else { return Subnet.automatic() }
        return try cidrs.map {
            guard let s = Subnet(cidr: $0) else {
                throw UsageError("--subnet \($0): give an IPv4 network from /16 to /32, e.g. 192.168.1.0/24")
            }
            return s
        }
    }

    /// `-l`: the tags on the LAN and what the ledger knows of their files. A tag that could not be
    /// read (refused login, changed host key) is listed with its problem, also on stderr; the
    /// caller exits 1 when any has one.
    public static func list(subnets: [Subnet], options: PullOptions, console: Console) async throws -> [DiscoveredTag] {
        let ledger = try Ledger(readOnlyPath: options.ledgerPath)
        let connector = SSHTagConnector(options: options, knownHosts: KnownHosts(path: options.knownHostsPath), console: console)
        let pool = BlockingPool(threads: 16, name: "ceti-discover")
        defer { pool.shutdown() }
        let tags = try await TagDiscovery(connector: connector, ledger: ledger, options: options, console: console)
            .discover(subnets, pool: pool)
        for t in tags { if let problem = t.problem { console.error(problem) } }
        return tags
    }

    /// `-t HOST...` (targets given) or `-a` (subnets given: discover, then pull every tag found).
    /// Cleaning with `--require uploaded` needs `s3`: the bucket whose objects prove each file, asked
    /// just before each delete.
    public static func pull(
        targets: [String], discovering subnets: [Subnet]? = nil, options: PullOptions,
        s3 settings: S3Settings? = nil, console: Console
    ) async throws -> Summary {
        let start = Date()
        var work = try targets.map(TagTarget.parse)
        var check: ObjectCheck?
        var service: S3Service?
        defer { service?.shutdown() }
        if options.clean && options.require == .uploaded {
            guard let settings else { throw UsageError("-c needs the bucket the files were uploaded to: give --bucket (or CETI_BUCKET)") }
            let s3 = S3Service(settings: settings, console: console)
            service = s3
            // Credentials and bucket first: a wrong secret is found before a tag is touched.
            try await s3.store.checkBucket(settings.bucket)
            check = ObjectCheck(s3: s3.store, bucket: settings.bucket)
        }
        let ledger = options.dryRun ? try Ledger(readOnlyPath: options.ledgerPath) : try Ledger(path: options.ledgerPath)
        let connector = SSHTagConnector(options: options, knownHosts: KnownHosts(path: options.knownHostsPath), console: console)
        let puller = TagPuller(
            options: options, ledger: ledger, connector: connector, console: console, meter: ProgressMeter(console: console))
        let cleaner = options.clean ? TagCleaner(ledger: ledger, require: options.require, dryRun: options.dryRun, s3: check) : nil
        // One pool for the run: discovery's probes, then one session per tag (at most --jobs).
        let pool = BlockingPool(threads: max(16, options.jobs), name: "ceti-tag")
        defer { pool.shutdown() }
        let slots = AsyncLimiter(max(1, options.jobs))
        if let subnets {
            let found = try await TagDiscovery(connector: connector, ledger: ledger, options: options, console: console)
                .discover(subnets, pool: pool)
            console.info("found \(found.count) tag(s)" + (found.isEmpty ? "" : ": " + found.map(\.summary).joined(separator: ", ")))
            // Tags that could not be read are tried again like a -t: each gets its error line and exit 1.
            work += found.map(\.target)
        }
        // Totals grow as each tag's folder is listed.
        puller.meter.begin(files: 0, bytes: 0)
        defer { puller.meter.end() }
        var reports: [TagPullReport] = []
        try await withThrowingTaskGroup(of: TagPullReport.self) { group in
            for w in work {
                group.addTask { try await slots.run { try await pool.run { pullTag(w, puller: puller, cleaner: cleaner) } } }
            }
            for try await report in group {
                if let first = report.duplicateOf {
                    console.info("\(report.address): the same tag as \(first) (\(report.tag), same host key); pulled once")
                    continue
                }
                PullReporter.report(report, console: console)
                reports.append(report)
            }
        }
        return Summary(
            dryRun: options.dryRun, tags: reports.sorted { $0.tag < $1.tag },
            seconds: Date().timeIntervalSince(start))
    }

    /// One tag, whaletag's way: every file in the folder's order, confirmed by the tag in one
    /// batch at the end, then (-c) what is proven deleted. Blocking.
    static func pullTag(_ target: TagTarget, puller: TagPuller, cleaner: TagCleaner?) -> TagPullReport {
        puller.session(target) { tag, report in
            if puller.options.dryRun {
                report.files = try puller.preview(tag)
            } else {
                let lock = try puller.lockFolder(device: tag.name)
                defer { withExtendedLifetime(lock) {} }
                try pullAll(tag, target: target, puller: puller, into: &report.files)
            }
            guard let cleaner, !Interrupt.isRequested else { return }
            // A file that could not be pulled keeps itself, never the other files of the tag:
            // each one is deleted only on its own proof (a tag-wide error never gets here).
            let failed = Dictionary(report.files.filter { $0.action == .failed }.map { ($0.name, $0.message ?? "failed") }) { a, _ in a }
            report.cleaned = try cleaner.clean(tag: tag, remoteDir: puller.remoteDirectory, failed: failed)
        }
    }

    /// Every file of the tag in the folder's order, each confirmed by the tag (over a connection
    /// of the checker's own) while the next one arrives.
    private static func pullAll(
        _ tag: any TagConnection, target: TagTarget, puller: TagPuller, into outcomes: inout [PullOutcome]
    ) throws {
        let checker = TagChecker(for: target, tag: tag, puller: puller)
        defer { outcomes += checker.finish() }
        for planned in try puller.plan(tag, held: { _ in true }) {
            // SIGINT/SIGTERM: no new file; what arrived is confirmed and recorded.
            if Interrupt.isRequested { break }
            let file = planned.file
            if let settled = planned.settledOutcome {
                if file.isRegular { puller.meter.fileFinished(skippedBytes: file.size, skipped: true) }
                outcomes.append(settled)
                continue
            }
            do {
                try checker.confirm(try puller.download(file, from: tag))
            } catch {
                // Interrupted between two chunks: the partial stays for the next run to resume.
                if error is Interrupted { break }
                puller.meter.fileFinished(skippedBytes: file.size, failed: true)
                outcomes.append(
                    PlannedPull.forgiving(PullOutcome(action: .failed, name: file.name, size: file.size, message: "\(error)"), after: error)
                )
            }
        }
    }

    public static func listText(_ tags: [DiscoveredTag]) -> String {
        guard !tags.isEmpty else { return "no tags found" }
        let problems = tags.contains { $0.problem != nil }
        var lines = [
            "HOSTNAME".padding(toLength: 20, withPad: " ", startingAt: 0) + "ADDRESS          FILES  BYTES        PULLED  UPLOADED"
                + (problems ? "  PROBLEM" : "")
        ]
        for t in tags {
            guard let problem = t.problem else {
                lines.append(
                    t.name.padding(toLength: 20, withPad: " ", startingAt: 0)
                        + t.address.padding(toLength: 17, withPad: " ", startingAt: 0)
                        + String(t.files).padding(toLength: 7, withPad: " ", startingAt: 0)
                        + ByteSize.format(t.bytes).padding(toLength: 13, withPad: " ", startingAt: 0)
                        + String(t.pulled).padding(toLength: 8, withPad: " ", startingAt: 0)
                        + (problems ? String(t.uploaded).padding(toLength: 10, withPad: " ", startingAt: 0) : String(t.uploaded)))
                continue
            }
            lines.append(
                t.name.padding(toLength: 20, withPad: " ", startingAt: 0)
                    + t.address.padding(toLength: 17, withPad: " ", startingAt: 0)
                    + "-      -            -       -         " + Self.shortProblem(problem))
        }
        return lines.joined(separator: "\n")
    }

    /// The table's PROBLEM column: the error without the address it starts with.
    static func shortProblem(_ problem: String) -> String {
        guard let colon = problem.range(of: ": ") else { return problem }
        let head = problem[..<colon.lowerBound]
        return head.contains(" ") && !head.contains("(") ? problem : String(problem[colon.upperBound...])
    }

}
