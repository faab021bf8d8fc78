import Foundation
import Testing

@testable import CetiKit

@Suite struct TransferWindowTests {
    /// `jobs` small files at once; large files by the weight of their parts (half as many).
    @Test func smallFilesFillTheWindowLargeOnesTakeHalf() async {
        let w = TransferWindow(jobs: 4, partSize: 8 << 20)
        for _ in 0..<4 { await w.acquire(w.weight(100_000)) }
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
        await w.acquire(1)
        let order = Locked<[String]>([])
        var waiting: [Task<Void, Never>] = []
        for name in ["a.flac", "b.log", "c.csv", "d.raw"] {
            waiting.append(
                Task {
                    await w.acquire(1, rank: TransferWindow.rank(name))
                    order.update { $0.append(name) }
                    await w.release(1)
                })
            try await Task.sleep(nanoseconds: 20_000_000)  // queued in this order
        }
        await w.release(1)
        for t in waiting { await t.value }
        #expect(order.value == ["c.csv", "a.flac", "d.raw", "b.log"])
    }
}
