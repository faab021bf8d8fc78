import Foundation

/// `ceti watch`: scans the roots every `interval`, uploads each session once it is complete
/// (markers there, unchanged for `stable_for`), writes its manifest and `_COMPLETE`, then moves,
/// keeps or deletes it (`after_upload`); tells the webhook and e-mail (`notify`), and shows it all
/// on the status page. One watcher per ledger. A session that fails is retried with backoff and
/// never holds up the others; SIGTERM ends the request in hand and exits; a kill -9 is resumed
/// like ingest (the same run, the same manifest folder).
public enum WatchRun {
    public static func execute(
        _ options: WatchOptions, settings: S3Settings, console: Console, retry: RetryPolicy = RetryPolicy(),
        clock: any WallClock = SystemClock()
    ) async throws -> WatchSummary {
        let ledgerPath = FileWalker.absolute(options.ledgerPath)
        try FileManager.default.createDirectory(
            atPath: (ledgerPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard let lock = try FileLock(path: ledgerPath + ".watch-lock") else {
            throw UsageError("another ceti watch is running on the ledger \(ledgerPath); one watcher per ledger")
        }
        defer { withExtendedLifetime(lock) {} }
        let ledger = try Ledger(path: ledgerPath)
        var transfer = CurlClient.Options()
        transfer.connections = max(1, options.jobs)
        let service = S3Service(settings: settings, transfer: transfer, retry: retry, console: console)
        defer { service.shutdown() }
        let pool = BlockingPool(threads: max(2, ProcessInfo.processInfo.activeProcessorCount), name: "ceti-watch")
        defer { pool.shutdown() }

        let board = StatusBoard(WatchStatus(version: Ceti.version, startedAt: Timestamp.iso8601(clock.now())))
        var server: StatusServer?
        if let listen = options.statusListen {
            let s = try await StatusServer.start(listen: listen, allowAnyAddress: options.statusListenAny, board: board, console: console)
            console.info("status page: \(s.url)")
            server = s
        }
        let notifier = options.config.notify.map { Notifier(settings: $0, console: console) }
        let watcher = Watcher(
            options: options, ledger: ledger, store: service.store, pool: pool, board: board, notifier: notifier, console: console,
            clock: clock, excluded: [ledgerPath, ledgerPath + "-wal", ledgerPath + "-shm", ledgerPath + ".watch-lock"])
        let summary: WatchSummary
        do {
            summary = try await watcher.run()
        } catch {
            await server?.stop()
            throw error
        }
        await server?.stop()
        return summary
    }
}
