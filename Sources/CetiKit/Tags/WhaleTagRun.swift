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
        let puller = try setUp(options, console: console, readOnly: true)
        let pool = BlockingPool(threads: 16, name: "ceti-discover")
        let tags = try await TagDiscovery(puller: puller, options: options, console: console).discover(subnets, pool: pool)
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
        var curl: CurlClient?
        defer { curl?.shutdown() }
        if options.clean && options.require == .uploaded {
            guard let settings else { throw UsageError("-c needs the bucket the files were uploaded to: give --bucket (or CETI_BUCKET)") }
            curl = CurlClient(options: CurlClient.Options())
            let s3 = S3Client(endpoint: settings.endpoint, region: settings.region, credentials: settings.credentials, http: curl!)
            s3.log = { [console] in console.verbose($0) }
            // Credentials and bucket first: a wrong secret is found before a tag is touched.
            try await s3.checkBucket(settings.bucket)
            check = ObjectCheck(s3: s3, bucket: settings.bucket)
        }
        let puller = try setUp(options, console: console, objectCheck: check)
        if let subnets {
            let pool = BlockingPool(threads: 16, name: "ceti-discover")
            let found = try await TagDiscovery(puller: puller, options: options, console: console).discover(subnets, pool: pool)
            console.info("found \(found.count) tag(s)" + (found.isEmpty ? "" : ": " + found.map(\.summary).joined(separator: ", ")))
            // Tags that could not be read are tried again like a -t: each gets its error line and exit 1.
            work += found.map(\.target)
        }
        let pool = BlockingPool(threads: max(1, min(options.jobs, work.count)), name: "ceti-tag")
        // Totals grow as each tag's folder is listed.
        puller.meter.begin(files: 0, bytes: 0)
        defer { puller.meter.end() }
        var reports: [TagPullReport] = []
        try await withThrowingTaskGroup(of: TagPullReport.self) { group in
            for w in work {
                group.addTask { try await pool.run { puller.pull(w) } }
            }
            for try await report in group {
                if let first = report.duplicateOf {
                    console.info("\(report.address): the same tag as \(first) (\(report.tag), same host key); pulled once")
                    continue
                }
                Self.report(report, console: console)
                reports.append(report)
            }
        }
        return Summary(
            dryRun: options.dryRun, tags: reports.sorted { $0.tag < $1.tag },
            seconds: Date().timeIntervalSince(start))
    }

    private static func setUp(
        _ options: PullOptions, console: Console, readOnly: Bool = false,
        objectCheck: ObjectCheck? = nil
    ) throws -> TagPuller {
        let ledger = options.dryRun || readOnly ? try Ledger(readOnlyPath: options.ledgerPath) : try Ledger(path: options.ledgerPath)
        let knownHosts = KnownHosts(path: options.knownHostsPath)
        return TagPuller(
            options: options, ledger: ledger, knownHosts: knownHosts, console: console,
            meter: ProgressMeter(console: console), objectCheck: objectCheck)
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

    static func isAddress(_ s: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }

    /// Problems always; one result line per file pulled unless `results` is false (ingest reports
    /// its files once they are in S3).
    static func report(_ r: TagPullReport, console: Console, results: Bool = true) {
        if let error = r.error {
            // SSH errors already name the address; others get the tag's name in front.
            console.error(error.contains(r.address) ? error : "\(r.tag): \(error)")
        }
        for f in r.files {
            switch f.action {
            case .failed:
                console.error("\(r.tag): \(f.name.printable): \(f.message ?? "failed")")
            case .stillWriting:
                console.info("\(r.tag): \(f.name.printable): \(f.message ?? "")")
            case .ignored:
                console.verbose("\(r.tag): \(f.name.printable): ignored (\(f.message ?? ""))")
            case .skipped:
                console.verbose("\(r.tag): \(f.name.printable): already pulled to \((f.localPath ?? "?").printable)")
            default:
                guard results, console.showsResults else { continue }
                console.result(
                    f.action.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0)
                        + ByteSize.format(f.size).padding(toLength: 11, withPad: " ", startingAt: 0)
                        + " \(r.tag)/\(f.name.printable)")
            }
        }
        reportCleaned(r.cleaned, tag: r.tag, console: console)
    }

    static func reportCleaned(_ cleaned: [CleanOutcome], tag: String, console: Console) {
        for c in cleaned {
            console.result(
                c.action.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0)
                    + ByteSize.format(c.size).padding(toLength: 11, withPad: " ", startingAt: 0)
                    + " \(tag)/\(c.name.printable): \(c.reason)")
        }
    }
}
