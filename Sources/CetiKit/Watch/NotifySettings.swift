/// Where `ceti watch` sends notifications (the config file's `watch.notify`), with the secrets
/// already read from their files: never print, log or store these values.
public struct NotifySettings: Sendable, Equatable {
    /// A webhook URL (Slack's, or any receiver of a JSON POST). A secret: whoever has it can post.
    public var webhook: String?
    public var email: Email?
    /// The events that are sent.
    public var on: Set<WatchEvent.Kind> = [.complete, .failed, .stalled]
    /// No byte moved for this long while work is pending: a `stalled` event (once per stall).
    public var stallAfterSeconds: Double = 3600

    public struct Email: Sendable, Equatable {
        /// smtp://host:port (STARTTLS when the server offers it) or smtps://host:port (TLS).
        public var smtpURL: String
        public var from: String
        public var to: [String]
        public var user: String?
        /// A secret, read from `password_file`.
        public var password: String?

        public init(smtpURL: String, from: String, to: [String], user: String? = nil, password: String? = nil) {
            self.smtpURL = smtpURL
            self.from = from
            self.to = to
            self.user = user
            self.password = password
        }
    }

    public init(webhook: String? = nil, email: Email? = nil) {
        self.webhook = webhook
        self.email = email
    }
}
