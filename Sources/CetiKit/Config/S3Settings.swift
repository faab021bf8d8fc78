import Foundation

/// Where and as whom to talk to S3, from flags, then environment, then the config file.
public struct S3Settings: Sendable {
    public var bucket: String
    public var endpoint: S3Endpoint
    public var region: String
    public var credentials: AWSCredentials

    /// Flags as given on the command line (nil when absent).
    public struct Flags: Sendable {
        public var bucket: String?
        public var endpointURL: String?
        public var region: String?
        public var profile: String?
        public init(bucket: String? = nil, endpointURL: String? = nil, region: String? = nil, profile: String? = nil) {
            self.bucket = bucket
            self.endpointURL = endpointURL
            self.region = region
            self.profile = profile
        }
    }

    public static func resolve(_ flags: Flags, environment env: [String: String], config: ConfigFile) throws -> S3Settings {
        func nonEmpty(_ s: String?) -> String? { s.flatMap { $0.isEmpty ? nil : $0 } }
        guard let bucket = try nonEmpty(flags.bucket) ?? nonEmpty(env["CETI_BUCKET"]) ?? config.string("bucket") else {
            throw UsageError(
                "no bucket given: pass --bucket NAME, set CETI_BUCKET, or put `bucket: NAME` in \(config.path ?? "the config file")")
        }
        let profile = try nonEmpty(flags.profile) ?? config.string("profile")
        let region =
            try CredentialChain.region(explicit: nonEmpty(flags.region), profile: profile, environment: env)
            ?? config.string("region") ?? "us-east-1"
        let endpoint: S3Endpoint
        if let url = nonEmpty(flags.endpointURL) ?? nonEmpty(env["AWS_ENDPOINT_URL_S3"]) ?? nonEmpty(env["AWS_ENDPOINT_URL"]) {
            guard let e = S3Endpoint(url: url) else {
                throw UsageError("endpoint URL '\(url)' is not an http:// or https:// URL with a host")
            }
            endpoint = e
        } else if let url = try config.string("endpoint_url") {
            guard let e = S3Endpoint(url: url) else {
                throw config.invalid("endpoint_url", "\(url) is not an http:// or https:// URL with a host")
            }
            endpoint = e
        } else {
            endpoint = .aws(region: region)
        }
        let credentials: AWSCredentials
        do {
            credentials = try CredentialChain.resolve(profile: profile, environment: env)
        } catch let e as CredentialError {
            throw UsageError(e.description)
        }
        return S3Settings(bucket: bucket, endpoint: endpoint, region: region, credentials: credentials)
    }
}
