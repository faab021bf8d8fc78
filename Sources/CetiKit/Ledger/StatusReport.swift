import Foundation

/// `ceti status`: the ledger's view, per device.
public struct StatusReport: Sendable, Codable {
    public var ledger: String
    public var devices: [DeviceStatus]
    public var lastIngestRun: RunStatus?

    /// `--files`: every file with where its verified copies are (`--pending`: only those S3 does
    /// not hold yet, the ones not safe to delete anywhere).
    public var files: [FileCustody]?

    public static func load(ledgerPath: String, files: Bool = false, pending: Bool = false, device: String? = nil) throws
        -> StatusReport
    {
        let ledger = try Ledger(readOnlyPath: ledgerPath)
        // A ledger written by an older ceti has no runs yet.
        var report = StatusReport(
            ledger: ledgerPath, devices: try ledger.status().filter { device == nil || $0.device == device },
            lastIngestRun: try? ledger.lastRun())
        if files || pending { report.files = try ledger.custody(device: device).filter { !pending || !$0.inS3 } }
        return report
    }

    public var text: String {
        if let files { return Self.text(files, ledger: ledger) }
        return devicesText
    }

    static func text(_ files: [FileCustody], ledger: String) -> String {
        guard !files.isEmpty else { return "ledger \(ledger): no such file" }
        return files.map { f in
            var parts = [
                "\(f.device.isEmpty ? "-" : f.device)/\((f.file as NSString).lastPathComponent.printable)", ByteSize.format(f.size),
            ]
            if let copy = f.copy { parts.append("copy \(copy.printable)") }
            if let d = f.derivative { parts.append("derivative \((d as NSString).lastPathComponent.printable)") }
            parts.append(f.object.map { "in \($0.printable)" } ?? "NOT IN S3")
            parts.append(f.backup.map { "backup \($0.printable)" } ?? "no backup")
            return parts.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    private var devicesText: String {
        guard !devices.isEmpty else { return "ledger \(ledger): nothing recorded yet" }
        var lines = [
            "ledger \(ledger)",
            "DEVICE".padding(toLength: 24, withPad: " ", startingAt: 0)
                + "PULLED/COPIED           VERIFIED IN S3          IN FLIGHT       FAILED",
        ]
        for d in devices {
            let pulled = "\(d.pulledFiles) (\(ByteSize.format(d.pulledBytes)))"
            let verified = "\(d.verifiedObjects) (\(ByteSize.format(d.verifiedBytes)))"
            let inFlight = "\(d.inFlightUploads) (\(ByteSize.format(d.inFlightBytes)))"
            lines.append(
                d.device.padding(toLength: 24, withPad: " ", startingAt: 0)
                    + pulled.padding(toLength: 24, withPad: " ", startingAt: 0)
                    + verified.padding(toLength: 24, withPad: " ", startingAt: 0)
                    + inFlight.padding(toLength: 16, withPad: " ", startingAt: 0) + "\(d.failed)")
            for f in d.failures { lines.append("    failed: \(f)") }
        }
        if let run = lastIngestRun {
            lines.append("last ingest run \(run.id) (\(run.finished ? "finished" : "interrupted: the next ceti ingest resumes it")):")
            for d in run.devices {
                lines.append("    \(d.device): \(d.files) file(s), " + (d.complete ? "manifest and _COMPLETE written" : "no manifest yet"))
            }
        }
        return lines.joined(separator: "\n")
    }
}
