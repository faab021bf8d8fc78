import Foundation

/// `ceti verify`: every verified object the ledger knows (of a run or a device) against what S3
/// holds now, and every backup copy against its record; lists each mismatch. Reads the ledger,
/// writes nothing anywhere.
public enum VerifyRun {
    public static func execute(
        _ options: VerifyOptions, settings: S3Settings, console: Console, retry: RetryPolicy = RetryPolicy()
    ) async throws -> VerifySummary {
        let service = S3Service(settings: settings, retry: retry, console: console)
        defer { service.shutdown() }
        return try await execute(options, store: service.store, console: console)
    }

    public static func execute(_ options: VerifyOptions, store: any ObjectStore, console: Console) async throws -> VerifySummary {
        let path = FileWalker.absolute(options.ledgerPath)
        guard FileManager.default.fileExists(atPath: path) else {
            throw UsageError("no ledger at \(path): verify checks what a ledger recorded; give --ledger")
        }
        try await store.checkBucket(options.bucket)
        let ledger = try Ledger(readOnlyPath: path)
        var objects = try ledger.verifiedObjects(bucket: options.bucket, device: options.device)
        if let run = options.run {
            let devices = try ledger.devices(run: run)
            guard !devices.isEmpty else { throw UsageError("--run \(run): the ledger knows no such run (see `ceti status`)") }
            var keys = Set<String>()
            for device in devices where options.device == nil || options.device == device {
                for entry in try ledger.runEntries(run: run, device: device) {
                    keys.insert(try Manifest.decoder.decode(Manifest.Entry.self, from: Data(entry.utf8)).object.key)
                }
            }
            objects = objects.filter { keys.contains($0.key) }
        }
        let backups = options.run == nil && options.device == nil ? try ledger.backups() : []

        let pool = BlockingPool(threads: 2, name: "ceti-verify")
        defer { pool.shutdown() }
        let verifier = ObjectVerifier(store: store, pool: pool)
        var summary = VerifySummary(bucket: options.bucket, deep: options.deep)
        summary.objects = objects.count
        summary.bytes = objects.reduce(0) { $0 + $1.size }
        summary.backups = backups.count
        let meter = ProgressMeter(console: console)
        meter.begin(files: objects.count, bytes: options.deep ? summary.bytes : 0)
        defer { meter.end() }
        func found(_ p: VerifySummary.Problem?) {
            guard let p else { return }
            summary.problems.append(p)
            console.error("\(p.kind.rawValue): \(p.what): \(p.detail)")
        }
        try await withThrowingTaskGroup(of: VerifySummary.Problem?.self) { group in
            var next = objects.makeIterator()
            func addNext() {
                guard let object = next.next() else { return }
                group.addTask {
                    let problem = try await verifier.check(object, deep: options.deep)
                    meter.fileFinished(skippedBytes: options.deep ? object.size : 0)
                    return problem
                }
            }
            for _ in 0..<max(1, options.jobs) { addNext() }
            while let problem = try await group.next() {
                found(problem)
                addNext()
            }
        }
        for b in backups {
            found(try await verifier.check(.backup, path: b.path, sha256: b.sha256, size: b.size, deep: options.deep))
        }
        // The local files the objects were made from, where staging still holds them.
        for o in objects where FileWalker.fingerprint(path: o.localPath) != nil {
            summary.localCopies += 1
            found(try await verifier.check(.local, path: o.localPath, sha256: o.sha256, size: o.size, deep: options.deep))
        }
        summary.problems.sort { ($0.kind.rawValue, $0.what) < ($1.kind.rawValue, $1.what) }
        return summary
    }
}
