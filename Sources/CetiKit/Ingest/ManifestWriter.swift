import Foundation

/// The manifest step: lists each ingested file for its device's manifest in this run, and
/// completes a device-run — `manifest.json`, then `_COMPLETE` — once every file it lists is a
/// verified object. Writes nothing the ledger has not verified; a rerun writes the same bytes.
struct ManifestWriter: Sendable {
    let ledger: Ledger
    let store: any ObjectStore
    let bucket: String
    let prefix: String
    let console: Console
    /// The device's QC verdict over the files listed.
    var judge = QCJudge()

    /// Lists one file (its manifest entry) for the device's manifest of `run`. False when that
    /// manifest is already complete: the file then waits for the next run.
    func list(_ entry: Manifest.Entry, run: IngestRunRecord, device: String, host: String) throws -> Bool {
        let json = String(decoding: try Manifest.encoder.encode(entry), as: UTF8.self)
        return try ledger.assign(
            run: run.id, device: device, host: host, remotePath: entry.remotePath, sha256: entry.sha256, entry: json)
    }

    /// Writes the device's manifest, then `_COMPLETE`; returns the manifest's s3:// address, or nil
    /// when nothing of this device belongs to this run.
    func complete(run: IngestRunRecord, device: String, host: String) async throws -> String? {
        try ledger.adoptPending(run: run.id, device: device, host: host)
        guard let state = try ledger.runDevice(run: run.id, device: device) else { return nil }
        let folder = Manifest.folder(prefix: prefix, run: run.id, device: device)
        let manifestKey = folder + Manifest.fileName
        let completeKey = folder + Manifest.completeMarker
        if state.completedAt != nil { return "s3://\(bucket)/\(manifestKey)" }
        var entries = try ledger.runEntries(run: run.id, device: device).map {
            try Manifest.decoder.decode(Manifest.Entry.self, from: Data($0.utf8))
        }
        guard !entries.isEmpty else { return nil }

        // A run stopped right after writing _COMPLETE: the manifest there is final; files listed
        // since then wait for the next run.
        if try await store.headObject(bucket: bucket, key: completeKey) != nil,
            let existing = try await store.getObject(bucket: bucket, key: manifestKey)
        {
            let written = try Manifest.decode(existing.body)
            let listed = Set(written.files.map(\.remotePath))
            try ledger.release(run: run.id, device: device, keeping: listed)
            try ledger.recordManifest(run: run.id, device: device, key: manifestKey, etag: existing.etag)
            try ledger.recordComplete(run: run.id, device: device)
            return "s3://\(bucket)/\(manifestKey)"
        }

        // No manifest lists an object the ledger has not verified.
        for e in entries {
            guard let o = try ledger.object(bucket: bucket, key: e.object.key), o.etag == e.object.etag, o.sha256 == e.object.sha256 else {
                throw IngestError.unverified(key: e.object.key)
            }
        }
        entries.sort { $0.remotePath < $1.remotePath }
        let measured = entries.compactMap(\.qc)
        let manifest = Manifest(
            schemaVersion: Manifest.currentSchema, runId: run.id, runStartedAt: run.startedAt,
            device: device, host: state.host, bucket: bucket, files: entries,
            qc: measured.isEmpty ? nil : judge.device(device, files: measured, listFiles: false))
        // Create-only: two writers of one run's manifest (two laptops resuming copies of one ledger)
        // never overwrite each other; what is there decides.
        let body = try manifest.encoded()
        var etag: String
        var listed = entries.count
        do {
            etag = try await store.putSmall(body, bucket: bucket, key: manifestKey, createOnly: true)
        } catch let e as S3Error where e.isPreconditionFailed {
            guard let existing = try await store.getObject(bucket: bucket, key: manifestKey) else { throw e }
            etag = existing.etag
            if existing.body != body {
                // This run's own, written by an attempt stopped before it was recorded, listing
                // some of these files: it stands, and the files listed since wait for the next run.
                // Anything else in it (host, start, bucket), or no file at all, is another writer's.
                let written = try? Manifest.decode(existing.body)
                var ours = manifest
                // Its QC verdict is over the files it lists.
                (ours.files, ours.qc) = (written?.files ?? [], written?.qc)
                guard let written, written == ours, !written.files.isEmpty, written.files.allSatisfy(entries.contains)
                else { throw IngestError.manifestTaken(key: "s3://\(bucket)/\(manifestKey)") }
                try ledger.release(run: run.id, device: device, keeping: Set(written.files.map(\.remotePath)))
                listed = written.files.count
            }
        }
        try ledger.recordManifest(run: run.id, device: device, key: manifestKey, etag: etag)
        do {
            _ = try await store.putSmall([], bucket: bucket, key: completeKey, createOnly: true)
        } catch let e as S3Error {
            // Already there (an earlier attempt of this run, or a retry whose first try landed).
            guard e.isPreconditionFailed else { throw e }
        }
        try ledger.recordComplete(run: run.id, device: device)
        console.info("\(device): \(listed) file(s) in s3://\(bucket)/\(manifestKey), then \(Manifest.completeMarker)")
        return "s3://\(bucket)/\(manifestKey)"
    }
}
