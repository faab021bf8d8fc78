/// What every command's run ends with: one line for people, one JSON document for scripts, and
/// the exit status (0 all done, 1 something failed).
public protocol RunSummary: Encodable {
    var line: String { get }
    var exitCode: Int32 { get }
}

extension UploadSummary: RunSummary {}
extension WhaleTagRun.Summary: RunSummary {}
extension CompressRun.Summary: RunSummary {}
extension OffloadRun.Summary: RunSummary {}
