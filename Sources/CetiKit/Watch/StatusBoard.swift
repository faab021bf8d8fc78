/// The watcher's live status, written by the watch loop and read by the status page's server
/// (another task): every read is a whole, consistent snapshot.
public final class StatusBoard: Sendable {
    private let state: Locked<WatchStatus>

    public init(_ status: WatchStatus) { state = Locked(status) }

    public var snapshot: WatchStatus { state.value }

    public func update(_ change: (inout WatchStatus) -> Void) {
        state.update { change(&$0) }
    }
}
