/// Where one file's verified copies are, from the ledger: its source on a device, the local copy,
/// the derivative made of exactly that copy, the S3 object linked to this device's own file (the
/// custody rule: another device's identical bytes prove nothing) and a backup copy.
public struct FileCustody: Sendable, Codable, Equatable {
    /// The device (hostname or card) and the file's path there; for a local file s3upload took, the
    /// device folder and its local path.
    public var device: String
    public var file: String
    public var size: Int64
    public var sha256: String?
    public var copy: String?
    public var derivative: String?
    /// s3://bucket/key of the verified object holding the file or its derivative.
    public var object: String?
    public var backup: String?

    /// Safe to delete from its source: a verified object of its own holds it (the clean still asks
    /// S3 just before each delete).
    public var inS3: Bool { object != nil }

    /// What is still missing, in words.
    public var missing: [String] {
        (object == nil ? ["S3 object"] : []) + (backup == nil ? ["backup"] : [])
    }
}

extension Ledger {
    /// Every file the ledger knows, with where its verified copies are (of one device when given).
    public func custody(device: String? = nil) throws -> [FileCustody] {
        let filter = device == nil ? "" : " WHERE s.device = ?"
        let args: [SQLValue] = device.map { [.text($0)] } ?? []
        let pulled = """
            SELECT s.device, s.remote_path, s.size, s.sha256,
              (SELECT c.path FROM copies c WHERE c.source_id = s.id ORDER BY c.id DESC LIMIT 1),
              (SELECT d.output_path FROM derivatives d WHERE d.input_path IN (SELECT path FROM copies WHERE source_id = s.id)
                 AND d.input_sha256 = s.sha256 ORDER BY d.id DESC LIMIT 1),
              (SELECT 's3://' || o.bucket || '/' || o.key FROM objects o WHERE o.device = s.device AND (
                 o.local_path IN (SELECT path FROM copies WHERE source_id = s.id) AND o.sha256 = s.sha256
                 OR o.local_path IN (SELECT d.output_path FROM derivatives d
                   WHERE d.input_path IN (SELECT path FROM copies WHERE source_id = s.id) AND d.input_sha256 = s.sha256
                     AND d.output_sha256 = o.sha256)) ORDER BY o.verified_at LIMIT 1),
              (SELECT b.path FROM backups b WHERE b.sha256 = s.sha256 OR b.sha256 IN (SELECT d.output_sha256 FROM derivatives d
                 WHERE d.input_path IN (SELECT path FROM copies WHERE source_id = s.id) AND d.input_sha256 = s.sha256) LIMIT 1)
            FROM sources s\(filter) ORDER BY s.device, s.remote_path
            """
        // Files s3upload took that no pull or derivative accounts for.
        let local = """
            SELECT COALESCE((SELECT o.device FROM objects o WHERE o.local_path = f.path LIMIT 1),
                (SELECT x.device FROM failures x WHERE x.local_path = f.path LIMIT 1), ''), f.path, f.size, f.sha256,
              NULL, NULL,
              (SELECT 's3://' || o.bucket || '/' || o.key FROM objects o WHERE o.local_path = f.path AND o.sha256 = f.sha256 LIMIT 1),
              (SELECT b.path FROM backups b WHERE b.sha256 = f.sha256 LIMIT 1)
            FROM files f WHERE f.path NOT IN (SELECT path FROM copies) AND f.path NOT IN (SELECT output_path FROM derivatives)
            ORDER BY f.path
            """
        return try locked {
            try (try rows(pulled, args) + (try rows(local))).map {
                FileCustody(
                    device: try $0.text(0), file: try $0.text(1), size: try $0.int(2), sha256: $0.optionalText(3), copy: $0.optionalText(4),
                    derivative: $0.optionalText(5), object: $0.optionalText(6), backup: $0.optionalText(7))
            }
        }.filter { device == nil || $0.device == device }
    }
}
