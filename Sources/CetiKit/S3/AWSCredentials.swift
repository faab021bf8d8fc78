/// An AWS access key pair, optionally with an STS session token.
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// Where they came from, for messages; never contains the secret. E.g.
    /// "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", "profile 'x' in /root/.aws/credentials",
    /// "credential_process of profile 'x' in /root/.aws/config".
    public var source: String

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, source: String) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.source = source
    }
}

// Credentials end up in logs through string interpolation, `dump` and debuggers; none of them may
// show the secret or the token. The access key ID is not secret and identifies the key.
extension AWSCredentials: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        let token = sessionToken == nil ? "" : ", sessionToken: <redacted>"
        return "AWSCredentials(accessKeyID: \(accessKeyID), secretAccessKey: <redacted>\(token), source: \(source))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "accessKeyID": accessKeyID,
                "secretAccessKey": "<redacted>",
                "sessionToken": sessionToken == nil ? "nil" : "<redacted>",
                "source": source,
            ])
    }
}
