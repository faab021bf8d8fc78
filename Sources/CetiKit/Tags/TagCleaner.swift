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
/// since it was pulled (size, mtime and, asked of the tag, SHA-256), and its bytes are a verified
/// S3 object (or a verified local copy). Never a folder, never a file the ledger does not know.
struct TagCleaner {
    let ledger: Ledger
    let require: CleanProof
    let dryRun: Bool

    func clean(session: SSHSession, sftp: SFTPClient, device: String, remoteDir: String) throws -> [CleanOutcome] {
        var outcomes: [CleanOutcome] = []
        var candidates: [(file: RemoteFile, copy: CopyRecord, proof: String)] = []
        for file in try sftp.list(remoteDir) {
            func keep(_ reason: String) { outcomes.append(CleanOutcome(action: .kept, name: file.name, size: file.size, reason: reason)) }
            guard file.isRegular else { keep(file.isDirectory ? "a folder: never deleted" : "not a regular file"); continue }
            guard let copy = try ledger.copy(device: device, remotePath: remoteDir + "/" + file.name, size: file.size, mtime: file.mtime) else {
                keep("not pulled (or changed since it was pulled)")
                continue
            }
            switch require {
            case .uploaded:
                // The copy itself, or its verified FLAC/gzip, is a verified S3 object.
                guard let object = try ledger.verifiedObject(sha256: copy.sha256, size: copy.size)
                        ?? ledger.verifiedObjectOfDerivative(inputSHA256: copy.sha256) else {
                    keep("not uploaded yet")
                    continue
                }
                candidates.append((file, copy, "verified in s3://\(object.bucket)/\(object.key)"))
            case .local:
                guard (try? FileHashes.sha256(path: copy.localPath)) == copy.sha256 else {
                    keep("its local copy \(copy.localPath) is missing or differs")
                    continue
                }
                candidates.append((file, copy, "verified local copy \(copy.localPath)"))
            }
        }
        // Ask the tag itself that each file still holds the bytes that were proven.
        var remote: [String: String] = [:]
        for start in stride(from: 0, to: candidates.count, by: 200) {
            let names = candidates[start..<min(candidates.count, start + 200)].map(\.file.name)
            remote.merge(try RemoteChecksums.sha256(of: names, in: remoteDir, session: session)) { $1 }
        }
        for c in candidates {
            guard remote[c.file.name] == c.copy.sha256 else {
                outcomes.append(CleanOutcome(action: .kept, name: c.file.name, size: c.file.size,
                                             reason: "its SHA-256 on the tag no longer matches the pulled copy"))
                continue
            }
            if dryRun {
                outcomes.append(CleanOutcome(action: .wouldDelete, name: c.file.name, size: c.file.size, reason: c.proof))
                continue
            }
            try sftp.unlink(remoteDir + "/" + c.file.name)
            outcomes.append(CleanOutcome(action: .deleted, name: c.file.name, size: c.file.size, reason: c.proof))
        }
        return outcomes.sorted { $0.name < $1.name }
    }
}
