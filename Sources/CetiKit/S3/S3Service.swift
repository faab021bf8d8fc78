/// The real object store of a run: S3 over libcurl (`S3Client`, one attempt per request, each
/// request logged at -vv) with the retrying layer around it. The rate limit is libcurl's, on the
/// connections themselves. `shutdown()` when the run ends.
public final class S3Service: Sendable {
    public let store: any ObjectStore
    /// The same S3 without the retrying layer: one attempt per ask (is S3 there at all?).
    public let client: any ObjectStore
    private let curl: CurlClient

    public init(settings: S3Settings, transfer: CurlClient.Options = .init(), retry: RetryPolicy = RetryPolicy(), console: Console) {
        curl = CurlClient(options: transfer)
        let client = S3Client(
            endpoint: settings.endpoint, region: settings.region, credentials: settings.credentials, http: curl,
            log: { [console] in console.debug($0) })
        self.client = client
        store = RetryingStore(client, policy: retry, log: { [console] in console.verbose($0) })
    }

    public func shutdown() { curl.shutdown() }
}
