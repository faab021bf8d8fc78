/// The result of an s3upload run: every file's outcome and the totals.
public struct UploadSummary: Sendable, Codable {
    public var bucket: String
    public var dryRun: Bool
    public var files: [UploadOutcome]
    public var seconds: Double
    public var bytesSent: Int64

    public func count(_ actions: UploadOutcome.Action...) -> Int { files.filter { actions.contains($0.action) }.count }

    /// 0 when everything was uploaded or skipped; 1 when anything failed or conflicted.
    public var exitCode: Int32 { files.contains(where: \.isFailure) ? 1 : 0 }

    public var line: String {
        let rate = seconds > 0 ? ByteSize.format(Int64(Double(bytesSent) / seconds)) + "/s" : "-"
        var parts: [String] = []
        if dryRun {
            parts.append("\(count(.wouldUpload)) to upload")
            parts.append("\(count(.wouldResume)) to resume")
            parts.append("\(count(.wouldOverwrite)) to overwrite")
        } else {
            parts.append("\(count(.uploaded, .overwritten)) uploaded")
            parts.append("\(count(.resumed)) resumed")
        }
        parts.append("\(count(.skipped, .present)) already in S3")
        parts.append("\(count(.conflict)) conflicts")
        parts.append("\(count(.failed)) failed")
        return "\(dryRun ? "dry run: " : "")\(files.count) files: " + parts.joined(separator: ", ")
            + "; \(ByteSize.format(bytesSent)) sent in \(String(format: "%.1f", seconds)) s (\(rate))"
    }
}
