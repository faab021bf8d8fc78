import Foundation

/// The verify step: one verified object of the ledger against what S3 holds now (HEAD: size,
/// ETag, x-amz-meta-sha256; deep: its bytes read back in ranges and hashed), and one backup copy
/// against its record. Returns the problem found, or nil.
struct ObjectVerifier: Sendable {
    let store: any ObjectStore
    let pool: BlockingPool
    func check(_ object: ObjectRecord, deep: Bool) async throws -> VerifySummary.Problem? {
        let what = "s3://\(object.bucket)/\(object.key.printable)"
        guard let head = try await store.headObject(bucket: object.bucket, key: object.key) else {
            return .init(
                kind: .missing, what: what, detail: "S3 no longer holds it (recorded \(ByteSize.format(object.size)), ETag \(object.etag))")
        }
        guard head.size == object.size, head.etag == object.etag else {
            return .init(
                kind: .changed, what: what,
                detail:
                    "S3 holds \(ByteSize.format(head.size)), ETag \(head.etag); recorded \(ByteSize.format(object.size)), ETag \(object.etag)"
            )
        }
        guard head.sha256 == object.sha256 else {
            return .init(kind: .metadata, what: what, detail: "x-amz-meta-sha256 is \(head.sha256 ?? "absent"); recorded \(object.sha256)")
        }
        guard deep else { return nil }
        let (got, read) = try await store.sha256(bucket: object.bucket, key: object.key, size: object.size)
        guard read == object.size, got == object.sha256 else {
            return .init(
                kind: .corrupt, what: what,
                detail: "its \(ByteSize.format(read)) read back hash to \(got); recorded \(object.sha256) (size and ETag as recorded)")
        }
        return nil
    }

    /// A backup copy (`.backup`: it must be there) or an object's local file (`.local`: checked
    /// while it is still on disk): of its size, and (deep) of its SHA-256.
    func check(_ kind: VerifySummary.Problem.Kind, path: String, sha256: String, size: Int64, deep: Bool) async throws
        -> VerifySummary.Problem?
    {
        guard let now = FileWalker.fingerprint(path: path) else {
            return kind == .backup ? .init(kind: kind, what: path, detail: "the backup copy is gone") : nil
        }
        guard now.size == size else {
            return .init(kind: kind, what: path, detail: "\(ByteSize.format(now.size)) on disk; recorded \(ByteSize.format(size))")
        }
        guard deep else { return nil }
        let got = try await pool.run { try FileHashes.sha256(path: path) }
        return got == sha256 ? nil : .init(kind: kind, what: path, detail: "its bytes hash to \(got); recorded \(sha256)")
    }
}
