import Foundation

/// `ceti qc`: measures the recordings and sensor files of a folder, or reads what ingest measured
/// for a device or a run from the ledger; judges each device with the thresholds in force, and
/// with `html` writes the report. Reads only: nothing is changed, moved or uploaded.
public enum QCRun {
    public enum QCError: Error, CustomStringConvertible {
        case unknownRun(String)
        case unknownDevice(String)
        case nothingMeasured(String)
        case noFiles(String)

        public var description: String {
            switch self {
            case .unknownRun(let id): return "the ledger knows no run \(id); `ceti status` lists the runs"
            case .unknownDevice(let d): return "the ledger knows no ingest of device \(d); give a tag's hostname, e.g. wt-0a1b2c3d"
            case .nothingMeasured(let what):
                return "\(what) has no QC results (ingested with --no-qc, or by a ceti before QC): run `ceti qc` on its staging folder"
            case .noFiles(let dir): return "\(dir) holds no recording (.raw, .wav, .flac, .bin) or sensor file (.csv, .csv.gz)"
            }
        }
    }

    public static func execute(_ options: QCOptions, console: Console) async throws -> QCSummary {
        var summary: QCSummary
        switch options.source {
        case .directory(let dir):
            summary = try await measure(dir, options: options, console: console)
        case .device(let device):
            let ledger = try Ledger(readOnlyPath: options.ledgerPath)
            guard let run = try ledger.latestRun(device: device) else { throw QCError.unknownDevice(device) }
            summary = try recorded(run: run, devices: [device], ledger: ledger, options: options)
        case .run(let run):
            let ledger = try Ledger(readOnlyPath: options.ledgerPath)
            let devices = try ledger.devices(run: run)
            guard !devices.isEmpty else { throw QCError.unknownRun(run) }
            summary = try recorded(run: run, devices: devices, ledger: ledger, options: options)
        }
        if let path = options.html {
            let title = "ceti QC — " + (summary.runId.map { "run \($0)" } ?? summary.source)
            let page = QCReportPage.render(devices: summary.devices, title: title, generatedAt: Timestamp.iso8601(Date()))
            do {
                try Data(page.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            } catch {
                throw FileIOError.write(
                    path: path,
                    errno: (error as NSError).userInfo[NSUnderlyingErrorKey].flatMap { ($0 as? NSError)?.code }.map(Int32.init) ?? EIO)
            }
            summary.html = path
        }
        return summary
    }

    /// What ingest recorded for `devices` in `run`: each listed file's QC, judged again.
    static func recorded(run: String, devices: [String], ledger: Ledger, options: QCOptions) throws -> QCSummary {
        let judge = QCJudge(thresholds: options.thresholds)
        var out: [DeviceQC] = []
        for device in devices {
            let entries = try ledger.runEntries(run: run, device: device).compactMap {
                try? Manifest.decoder.decode(Manifest.Entry.self, from: Data($0.utf8))
            }
            let measured = entries.compactMap(\.qc)
            if !measured.isEmpty { out.append(judge.device(device, files: measured)) }
        }
        guard !out.isEmpty else { throw QCError.nothingMeasured("run \(run)") }
        return QCSummary(source: "run \(run)", runId: run, devices: out)
    }

    /// Every file QC reads below `dir`, measured on `options.jobs` threads.
    static func measure(_ dir: String, options: QCOptions, console: Console) async throws -> QCSummary {
        var walker = FileWalker(excludedPaths: [options.ledgerPath])
        let found = try walker.walk(dir)
        let rootName = (FileWalker.absolute(dir) as NSString).lastPathComponent
        let names = Set(found.map(\.path))
        // A FLAC or gzip beside its original is the same recording: measured once, from the original.
        let files = found.filter { f in
            guard FileQC.kind(of: f.relativePath) != nil else { return false }
            let lower = f.path.lowercased()
            if lower.hasSuffix(".csv.gz") { return !names.contains(String(f.path.dropLast(3))) }
            if lower.hasSuffix(".flac") {
                let stem = String(f.path.dropLast(5))
                return ![".raw", ".wav", ".RAW", ".WAV"].contains { names.contains(stem + $0) }
            }
            return true
        }
        for failure in walker.failures { console.error(failure.description) }
        guard !files.isEmpty || !walker.failures.isEmpty else { throw QCError.noFiles(dir) }
        // libFLAC and the file reads block: on a pool of our own, `jobs` files at a time.
        let pool = BlockingPool(threads: max(1, min(options.jobs, files.count)), name: "ceti-qc")
        defer { pool.shutdown() }
        let done = Locked(0)
        var results = [FileQC?](repeating: nil, count: files.count)
        var unreadable = walker.failures.map(\.path)
        await withTaskGroup(of: (Int, FileQC?, Bool).self) { group in
            for (i, f) in files.enumerated() {
                group.addTask {
                    defer {
                        let n = done.update { d in
                            d += 1
                            return d
                        }
                        console.status("qc: \(n)/\(files.count) files measured")
                    }
                    do {
                        let qc = try await pool.run {
                            try QCFileReader.analyze(path: f.path, name: f.relativePath, raw: options.raw, thresholds: options.thresholds)
                        }
                        return (i, qc, true)
                    } catch {
                        console.error("\(error)")
                        return (i, nil, false)
                    }
                }
            }
            for await (i, qc, read) in group {
                results[i] = qc
                if !read { unreadable.append(files[i].path) }
            }
        }
        console.status(nil)
        let judge = QCJudge(thresholds: options.thresholds)
        var byDevice: [String: [FileQC]] = [:]
        for (f, qc) in zip(files, results) {
            guard let qc else { continue }
            byDevice[f.device == FileWalker.unknownDevice ? rootName : f.device, default: []].append(qc)
        }
        return QCSummary(
            source: dir, runId: nil, devices: byDevice.keys.sorted().map { judge.device($0, files: byDevice[$0]!) },
            unreadable: unreadable.sorted())
    }
}
