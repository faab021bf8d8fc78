import Foundation

/// One place notifications go, named for the operator without its secret.
enum NotifyChannel: Sendable, Equatable {
    case webhook(url: String)
    case email(NotifySettings.Email)

    /// Every channel `settings` configures: the webhook first, then the e-mail.
    static func all(_ settings: NotifySettings) -> [NotifyChannel] {
        [settings.webhook.map { .webhook(url: $0) }, settings.email.map { .email($0) }].compactMap { $0 }
    }

    /// "webhook", or "e-mail to a@b via smtps://host:465": never the webhook URL, a password or
    /// user info written into the SMTP URL.
    var name: String {
        switch self {
        case .webhook: return "webhook"
        case .email(let e): return "e-mail to \(e.to.joined(separator: ", ")) via \(NotifyCurl.displayAddress(e.smtpURL))"
        }
    }

    /// Sends `event` once. Blocking: call it on a thread of our own.
    func send(_ event: WatchEvent) throws(NotifyCurl.Failure) {
        switch self {
        case .webhook(let url):
            try NotifyCurl.post(json: Self.json(event), to: url)
        case .email(let e):
            try NotifyCurl.send(
                NotifyMail.message(event, from: e.from, to: e.to),
                mail: NotifyCurl.Mail(from: e.from, to: e.to, user: e.user, password: e.password),
                via: e.smtpURL)
        }
    }

    /// The webhook's body: the event as `--json` writes documents (snake_case keys, sorted, nil
    /// fields left out).
    static func json(_ event: WatchEvent) -> [UInt8] {
        // WatchEvent holds only strings and numbers: encoding it cannot fail.
        Array(try! JSONOutput.encode(event).utf8)
    }
}
