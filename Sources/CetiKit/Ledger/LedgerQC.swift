import Foundation

/// Recording QC's measurements (issue #16), by the content they were made of: the file at `path`
/// whose SHA-256 is `sha256` (a pulled copy, or the original a FLAC or gzip was made from). Kept
/// so that a resumed run lists the same QC in its manifest without reading the file again.
extension Ledger {
    public func recordQC(path: String, sha256: String, _ qc: FileQC, now: Date = Date()) throws {
        var stored = qc
        // Problems are judged again with the thresholds in force whenever the result is read.
        stored.problems = []
        let json = String(decoding: try Manifest.encoder.encode(stored), as: UTF8.self)
        try locked {
            try db.query(
                """
                INSERT INTO qc_results (path, sha256, result, measured_at) VALUES (?, ?, ?, ?)
                ON CONFLICT(path, sha256) DO UPDATE SET result = excluded.result, measured_at = excluded.measured_at
                """, [.text(path), .text(sha256), .text(json), .text(Timestamp.iso8601(now))])
        }
    }

    public func qc(path: String, sha256: String) throws -> FileQC? {
        try locked {
            guard let row = try rows("SELECT result FROM qc_results WHERE path = ? AND sha256 = ?", [.text(path), .text(sha256)]).first
            else { return nil }
            return try? Manifest.decoder.decode(FileQC.self, from: Data(try row.text(0).utf8))
        }
    }

    /// The latest run that listed files of `device` (run ids sort by their start).
    public func latestRun(device: String) throws -> String? {
        try locked {
            try rows("SELECT run_id FROM run_devices WHERE device = ? ORDER BY run_id DESC LIMIT 1", [.text(device)]).first.map {
                try $0.text(0)
            }
        }
    }
}
