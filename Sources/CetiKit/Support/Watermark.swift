/// How far a file being written has got, for readers that follow the writer (parts sent to S3
/// while the pull still writes the file). The writer advances it from its thread; readers wait
/// without holding one. `close`: nothing more comes (the writer stopped), what is written stays
/// good; `abandon`: what was written is worth nothing (disowned), every reader stops.
final class Watermark: Sendable {
    private struct State: Sendable {
        var level: Int64 = 0
        var abandoned = false
        var closed = false
        var waiters: [(level: Int64, resume: CheckedContinuation<Bool, Never>)] = []
    }
    private let state = Locked(State())

    var isAbandoned: Bool { state.value.abandoned }

    func advance(to level: Int64) {
        let ready = state.update { s -> [CheckedContinuation<Bool, Never>] in
            s.level = max(s.level, level)
            let now = s.level
            let ready = s.waiters.filter { $0.level <= now }.map(\.resume)
            s.waiters.removeAll { $0.level <= now }
            return ready
        }
        for r in ready { r.resume(returning: true) }
    }

    func close() { stop(abandoning: false) }

    func abandon() { stop(abandoning: true) }

    private func stop(abandoning: Bool) {
        let all = state.update { s -> [CheckedContinuation<Bool, Never>] in
            s.closed = true
            s.abandoned = s.abandoned || abandoning
            defer { s.waiters = [] }
            return s.waiters.map(\.resume)
        }
        for r in all { r.resume(returning: false) }
    }

    /// Waits until `level` bytes are written: false once abandoned, or closed below `level`.
    func wait(for level: Int64) async -> Bool {
        await withCheckedContinuation { c in
            let answer = state.update { s -> Bool? in
                if s.abandoned { return false }
                if s.level >= level { return true }
                if s.closed { return false }
                s.waiters.append((level, c))
                return nil
            }
            if let answer { c.resume(returning: answer) }
        }
    }
}
