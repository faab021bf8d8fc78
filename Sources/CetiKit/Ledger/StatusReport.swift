import Foundation

/// `ceti status`: the ledger's view, per device.
public struct StatusReport: Sendable, Codable {
    public var ledger: String
    public var devices: [DeviceStatus]
    public var lastIngestRun: RunStatus?

    public static func load(ledgerPath: String) throws -> StatusReport {
        let ledger = try Ledger(readOnlyPath: ledgerPath)
        // A ledger written by an older ceti has no runs yet.
        return StatusReport(ledger: ledgerPath, devices: try ledger.status(), lastIngestRun: try? ledger.lastRun())
    }

    public var text: String {
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
