import Foundation

/// What must be proven before a file on a tag may be deleted.
public enum CleanProof: String, Sendable, Codable, CaseIterable {
    /// A verified S3 object holds the same bytes (the default).
    case uploaded
    /// A verified local copy with the same bytes exists on this laptop.
    case local
}

/// One decision of `whaletag -c`.
public struct CleanOutcome: Sendable, Codable, Equatable {
    public enum Action: String, Sendable, Codable {
        case deleted
        case kept
        case wouldDelete = "would-delete"
    }
    public var action: Action
    public var name: String
    public var size: Int64
    /// The proof (deleted) or the reason (kept).
    public var reason: String
}

/// Deletes, file by file over SFTP, only what the ledger proves is safe: the file is unchanged
/// since it was pulled (size, mtime and, asked of the tag, SHA-256), and its own bytes — this
/// device's copy, or that copy's verified FLAC/gzip — are a verified object in the configured
/// bucket that S3, asked just before the delete, still holds as recorded (or, with `--require
/// local`, its own verified local copy still hashes right). Never a folder, never a file the
/// ledger does not know.
struct TagCleaner {
    let ledger: Ledger
    let require: CleanProof
    let dryRun: Bool
    /// The bucket and its HEAD; required for `--require uploaded`.
    let s3: ObjectCheck?

    /// `failed`: files this run could not pull, by name, with the reason: kept, and said so; they
    /// never keep the tag's other, proven files. Names are in name form (`NameCodec`) throughout.
    func clean(
        tag: any TagConnection, remoteDir: String,
        failed: [String: String] = [:]
    ) throws -> [CleanOutcome] {
        var outcomes: [CleanOutcome] = []
        var candidates: [(file: RemoteFile, copy: CopyRecord, objects: [ObjectRecord])] = []
        for file in try tag.list(remoteDir) {
            func keep(_ reason: String) { outcomes.append(CleanOutcome(action: .kept, name: file.name, size: file.size, reason: reason)) }
            guard file.isRegular else { keep(file.isDirectory ? "a folder: never deleted" : "not a regular file"); continue }
            if let why = failed[file.name] { keep("not pulled in this run: \(why)"); continue }
            guard let copy = try ledger.copy(device: tag.name, remotePath: remoteDir + "/" + file.name, size: file.size, mtime: file.mtime)
            else {
                keep("not pulled (or changed since it was pulled)")
                continue
            }
            switch require {
            case .uploaded:
                guard let s3 else { throw UsageError("cleaning with --require uploaded needs the bucket: give --bucket") }
                let objects = try ledger.objectsProving(copy, bucket: s3.bucket)
                guard !objects.isEmpty else {
                    keep("not uploaded yet to s3://\(s3.bucket) from this tag's own copy")
                    continue
                }
                candidates.append((file, copy, objects))
            case .local:
                guard (try? FileHashes.sha256(path: copy.localPath)) == copy.sha256 else {
                    keep("its local copy \(copy.localPath.printable) is missing or differs")
                    continue
                }
                candidates.append((file, copy, []))
            }
        }
        // Ask the tag itself that each file still holds the bytes that were proven.
        // (RemoteChecksums sends the names in batches that fit one command.)
        let remote = try RemoteChecksums.sha256(of: candidates.map(\.file.name), in: remoteDir, on: tag)
        for c in candidates {
            func outcome(_ action: CleanOutcome.Action, _ reason: String) {
                outcomes.append(CleanOutcome(action: action, name: c.file.name, size: c.file.size, reason: reason))
            }
            guard remote[c.file.name] == c.copy.sha256 else {
                outcome(.kept, "its SHA-256 on the tag no longer matches the pulled copy")
                continue
            }
            let proof: String
            if require == .uploaded, let s3 {
                // Just before the delete: does S3 still hold one of the proving objects as recorded?
                var problems: [String] = []
                var held: ObjectRecord?
                for o in c.objects where held == nil {
                    if let problem = try s3.problem(with: o) { problems.append(problem) } else { held = o }
                }
                guard let held else {
                    outcome(.kept, problems.joined(separator: "; "))
                    continue
                }
                proof = "verified in s3://\(held.bucket)/\(held.key.printable) (confirmed just now)"
            } else {
                proof = "verified local copy \(c.copy.localPath.printable)"
            }
            if dryRun {
                outcome(.wouldDelete, proof)
                continue
            }
            try tag.unlink(remoteDir + "/" + c.file.name)
            outcome(.deleted, proof)
        }
        return outcomes.sorted { $0.name < $1.name }
    }
}
