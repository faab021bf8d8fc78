/// How a tag's pull and clean are told to the operator, the same from whaletag and ingest.
enum PullReporter {
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
