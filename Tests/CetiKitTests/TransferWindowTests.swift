import Foundation
import Testing

@testable import CetiKit

@Suite struct TransferWindowTests {
    /// Twice `jobs` small files at once, `jobs` medium ones; large files by the weight of their
    /// parts (half as many).
    @Test func smallFilesFillTheWindowLargeOnesTakeHalf() async throws {
        for (size, fit) in [(Int64(100_000), 8), (2 << 20, 4)] {
            let w = TransferWindow(jobs: 4, partSize: 8 << 20)
            for _ in 0..<fit { await w.acquire(w.weight(size)) }
            let started = Locked(false)
            let next = Task {
                await w.acquire(w.weight(size))
                started.value = true
            }
            try await Task.sleep(nanoseconds: 50_000_000)
            #expect(!started.value, "file \(fit + 1) of \(size) bytes waits while \(fit) are in flight")
            await w.release(w.weight(size))
            await next.value
            #expect(started.value)
        }
        let large = TransferWindow(jobs: 4, partSize: 8 << 20)
        await large.acquire(large.weight(1 << 30))
        await large.acquire(large.weight(1 << 30))
        let started = Locked(false)
        let third = Task {
            await large.acquire(large.weight(1 << 30))
            started.value = true
        }
        try? await Task.sleep(nanoseconds: 50_000_000)
        #expect(!started.value, "a third large file waits while two are in flight")
        await large.release(large.weight(1 << 30))
        await third.value  // goes once one of the two is done
        #expect(started.value)
    }

    /// While the window is full, sensor data waiting goes before audio waiting, logs last.
    @Test func sensorDataOvertakesWaitingAudio() async throws {
        let w = TransferWindow(jobs: 1, partSize: 8 << 20)
        await w.acquire(2 << 20)
        let order = Locked<[String]>([])
        var waiting: [Task<Void, Never>] = []
        for name in ["a.flac", "b.log", "c.csv", "d.raw"] {
            waiting.append(
                Task {
                    await w.acquire(2 << 20, rank: TransferWindow.rank(name))
                    order.update { $0.append(name) }
                    await w.release(2 << 20)
                })
            try await Task.sleep(nanoseconds: 20_000_000)  // queued in this order
        }
        await w.release(2 << 20)
        for t in waiting { await t.value }
        #expect(order.value == ["c.csv", "a.flac", "d.raw", "b.log"])
    }
}
