/// How many uploads are in flight at once: up to `jobs` files (`-j`), a small file (up to 1 MiB)
/// counting as half of one, and up to half of `jobs` parts' worth of bytes, where a file weighs
/// what it keeps on the wire at a time (its size, or one part of a large file). On a long, thin
/// uplink (a satellite link at 300 ms) a small file is mostly round trip, so twice `jobs` of them
/// go at once to keep the link busy; large files, each with its own parts in flight, go half as
/// many at a time.
actor TransferWindow {
    static let smallFile: Int64 = 1 << 20
    /// In half files.
    private let maxHalves: Int
    private let maxBytes: Int64
    private var halves = 0
    private var bytes: Int64 = 0
    /// Waiting files, by rank (sensor data before audio before logs), then in arrival order.
    private var waiting: [(weight: Int64, rank: Int, resume: CheckedContinuation<Void, Never>)] = []

    init(jobs: Int, partSize: Int64) {
        maxHalves = 2 * max(1, jobs)
        maxBytes = Int64(max(1, jobs / 2)) * partSize
        weightCap = partSize
    }

    /// What a file of `size` weighs in the window.
    nonisolated func weight(_ size: Int64) -> Int64 { max(1, min(size, weightCap)) }
    private nonisolated let weightCap: Int64

    private nonisolated func halves(_ weight: Int64) -> Int { weight <= Self.smallFile ? 1 : 2 }

    private func fits(_ weight: Int64) -> Bool {
        halves == 0 || (halves + halves(weight) <= maxHalves && bytes + weight <= maxBytes)
    }

    func acquire(_ weight: Int64, rank: Int = 0) async {
        if waiting.isEmpty && fits(weight) {
            halves += halves(weight)
            bytes += weight
            return
        }
        await withCheckedContinuation { c in
            let at = waiting.firstIndex { $0.rank > rank } ?? waiting.endIndex
            waiting.insert((weight, rank, c), at: at)
        }
    }

    /// Sensor data, configs and everything else small first (0), audio (1), logs last (2): what a
    /// scientist on shore needs first, and what keeps the uplink busy while recordings arrive.
    nonisolated static func rank(_ name: String) -> Int {
        let lower = name.lowercased()
        if PlannedPull.isLog(lower) { return 2 }
        return [".raw", ".flac", ".wav", ".bin"].contains(where: { lower.hasSuffix($0) }) ? 1 : 0
    }

    func release(_ weight: Int64) {
        halves -= halves(weight)
        bytes -= weight
        // In order: the first waiting file goes first (no file of the same rank overtakes another).
        while let first = waiting.first, fits(first.weight) {
            waiting.removeFirst()
            halves += halves(first.weight)
            bytes += first.weight
            first.resume.resume()
        }
    }

    /// At most one body per window slot, released whatever happens.
    nonisolated func run<T: Sendable>(size: Int64, rank: Int = 0, _ body: @Sendable () async throws -> T) async throws -> T {
        let w = weight(size)
        await acquire(w, rank: rank)
        do {
            let result = try await body()
            await release(w)
            return result
        } catch {
            await release(w)
            throw error
        }
    }
}
