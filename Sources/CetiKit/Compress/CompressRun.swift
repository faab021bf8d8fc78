import Foundation

/// `ceti compress`: raw/WAV audio to FLAC and CSV to gzip, files in parallel, each verified and
/// recorded before its original goes.
public enum CompressRun {
    public struct Summary: Sendable, Codable {
        public var dryRun: Bool
        public var files: [CompressOutcome]
        public var seconds: Double

        public var exitCode: Int32 { files.contains { $0.action == .failed } ? 1 : 0 }

        public var line: String {
            func n(_ a: CompressOutcome.Action) -> Int { files.filter { $0.action == a }.count }
            let done = files.filter { $0.action == .compressed }
            let inBytes = done.reduce(0) { $0 + $1.inputSize }
            let outBytes = done.reduce(0) { $0 + $1.outputSize }
            let ratio = inBytes > 0 ? String(format: " (%.1f%% of the original size)", Double(outBytes) / Double(inBytes) * 100) : ""
            return (dryRun ? "dry run: \(n(.wouldCompress)) to compress, " : "\(n(.compressed)) compressed\(ratio), ")
                + "\(n(.skipped)) already done, \(n(.failed)) failed; \(ByteSize.format(inBytes)) → \(ByteSize.format(outBytes)) "
                + "in \(String(format: "%.1f", seconds)) s"
        }
    }

    public static func execute(_ options: CompressOptions, console: Console) async throws -> Summary {
        if let problem = options.raw.problem { throw UsageError(problem) }
        let ledgerPath = FileWalker.absolute(options.ledgerPath)
        var walker = FileWalker(excludedPaths: [ledgerPath, ledgerPath + "-wal", ledgerPath + "-shm"])
        var found: [(path: String, kind: Compressor.Kind, size: Int64)] = []
        for dir in options.directories {
            do {
                for f in try walker.walk(dir) {
                    if let kind = Compressor.kind(of: f.path) { found.append((f.path, kind, f.fingerprint.size)) }
                }
            } catch let e as FileWalker.WalkError {
                throw UsageError(e.description)
            }
        }
        // What could not be read is a failure, not a silent skip: every folder, and every file
        // compress would have taken.
        var refused: [CompressOutcome] = walker.failures.compactMap { f in
            let kind = Compressor.kind(of: f.path)
            guard f.isDirectory || kind != nil else { return nil }
            return CompressOutcome(
                action: .failed, input: f.path, output: kind.map { Compressor.outputPath(f.path, $0) } ?? "",
                codec: kind == .gzip ? "gzip" : kind == nil ? "" : "flac", inputSize: 0, message: f.description)
        }
        // Two inputs never share an output (a.raw and a.wav, a.raw and a.RAW → a.flac): all of
        // them are kept and reported, decided here from the walk, before anything is written.
        var byOutput: [String: [String]] = [:]
        for w in found { byOutput[Compressor.outputPath(w.path, w.kind), default: []].append(w.path) }
        var work: [(path: String, kind: Compressor.Kind, size: Int64)] = []
        for w in found {
            let output = Compressor.outputPath(w.path, w.kind)
            let inputs = byOutput[output] ?? []
            if inputs.count > 1 {
                refused.append(
                    CompressOutcome(
                        action: .failed, input: w.path, output: output, codec: w.kind == .gzip ? "gzip" : "flac",
                        inputSize: w.size,
                        message: CompressError.collision(inputs: inputs.sorted(), output: output).description))
            } else {
                work.append(w)
            }
        }
        let ledger = options.dryRun ? try Ledger(readOnlyPath: ledgerPath) : try Ledger(path: ledgerPath)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let meter = ProgressMeter(console: console)
        // The meter moves as each file is encoded, not when it is done.
        let compressor = Compressor(
            options: options, ledger: ledger, gzipThreads: max(1, cores), progress: { meter.sent($0) })
        let pool = BlockingPool(threads: max(1, options.jobs), name: "ceti-compress")
        defer { pool.shutdown() }
        meter.begin(files: work.count, bytes: work.reduce(0) { $0 + $1.size })
        defer { meter.end() }
        var outcomes: [CompressOutcome] = []
        for o in refused.sorted(by: { $0.input < $1.input }) {
            report(o, console: console)
            outcomes.append(o)
        }
        try await withThrowingTaskGroup(of: CompressOutcome.self) { group in
            var next = work.makeIterator()
            func addNext() {
                // SIGINT/SIGTERM: the files in hand finish (verified, recorded); no new one starts.
                guard !Interrupt.isRequested, let w = next.next() else { return }
                group.addTask { try await pool.run { compressor.compress(w.path, kind: w.kind) } }
            }
            for _ in 0..<max(1, options.jobs) { addNext() }
            while let o = try await group.next() {
                if o.action != .compressed { meter.sent(o.inputSize) }
                meter.fileFinished(skipped: o.action == .skipped, failed: o.action == .failed)
                report(o, console: console)
                outcomes.append(o)
                addNext()
            }
        }
        return Summary(dryRun: options.dryRun, files: outcomes.sorted { $0.input < $1.input }, seconds: meter.elapsed)
    }

    static func report(_ o: CompressOutcome, console: Console) {
        if o.action == .failed {
            console.error("failed: \(o.message ?? o.input)")
            return
        }
        guard console.showsResults else { return }
        let detail =
            o.action == .compressed
            ? String(
                format: "%@ → %@ (%.1f%%)", ByteSize.format(o.inputSize), ByteSize.format(o.outputSize),
                o.inputSize > 0 ? Double(o.outputSize) / Double(o.inputSize) * 100 : 0)
            : ByteSize.format(o.inputSize)
        let line =
            o.action.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0) + "\(o.output)  \(detail)"
            + (o.originalRemoved ? ", original removed" : "")
        if console.stderrIsTTY && o.action == .skipped { console.verbose(line) } else { console.result(line) }
    }
}
