import Foundation
import Testing

@testable import CetiKit

/// The run's view of S3: unreachable is waited for (and said), a refusal is fatal, patience ends it.
@Suite struct UplinkTests {
    func uplink(_ store: MemoryObjectStore) -> Uplink {
        Uplink(probe: store, bucket: "b", clock: SystemClock(), console: Console(verbosity: .quiet), firstDelay: 0.01, maxDelay: 0.02)
    }

    @Test func whileS3CannotBeReachedTheWaitIsSaidAndEndsWhenItAnswers() async throws {
        let store = MemoryObjectStore(buckets: ["b"])
        store.offline = true
        let link = uplink(store)
        defer { link.stop() }
        #expect(try await link.check() == false)
        link.waiting(1 << 20, 1)
        link.waiting(1 << 20, 1)
        let said = try #require(link.waitDescription)
        #expect(said.hasPrefix("S3 unreachable (") && said.contains("2 file(s) (2.0 MiB) queued"))
        let waiter = Task { await link.waitOnline() }
        store.offline = false
        #expect(await waiter.value == true)
        #expect(link.isOnline && link.waitDescription == nil)
    }

    @Test func patienceEndsTheWaitAndARefusalIsFatal() async throws {
        let store = MemoryObjectStore(buckets: ["b"])
        store.offline = true
        let link = uplink(store)
        defer { link.stop() }
        #expect(try await link.check() == false)
        link.startPatience(0.05)
        #expect(await link.waitOnline() == false)
        #expect(link.state == .gaveUp)

        let refused = uplink(MemoryObjectStore(buckets: ["other"]))
        defer { refused.stop() }
        await #expect(throws: S3Error.self) { try await refused.check() }
        #expect(await refused.waitOnline() == false && refused.fatal != nil)
    }
}
