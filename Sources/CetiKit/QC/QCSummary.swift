/// `ceti qc`'s result: each device's verdict, problems, timeline and files.
public struct QCSummary: Sendable, Codable, RunSummary {
    /// The folder, or the run reported on.
    public var source: String
    public var runId: String?
    public var devices: [DeviceQC]
    /// Files that could not be read at all (each also said on stderr).
    public var unreadable: [String] = []
    public var html: String?

    /// 0 no device is bad; 4 one is (as `ingest --qc-strict`); 1 a file could not be read.
    public var exitCode: Int32 {
        if !unreadable.isEmpty { return 1 }
        return devices.contains { $0.verdict == .bad } ? IngestSummary.qcBad : 0
    }

    public var line: String {
        func count(_ v: DeviceQC.Verdict) -> Int { devices.filter { $0.verdict == v }.count }
        let files = devices.reduce(0) { $0 + ($1.files?.count ?? 0) }
        return "qc \(source): \(devices.count) device(s), \(files) file(s): \(count(.bad)) bad, \(count(.warn)) warn, \(count(.ok)) ok"
            + (unreadable.isEmpty ? "" : "; \(unreadable.count) file(s) could not be read")
            + (html.map { "; report \($0)" } ?? "")
    }
}
