import CCurl
import CCurlShim
import Foundation

/// One notification sent with libcurl: a JSON POST to a webhook, or one message to an SMTP server.
/// Blocking: run it on a thread of our own. Each call has its own easy handle (notifications are
/// rare; there is no connection worth keeping). Not `CurlClient`: that one has no whole-request
/// time limit, and its transport errors carry the URL, which for a webhook is a secret. libcurl is
/// never verbose here, and a failure's text is checked for the secrets before it is returned.
enum NotifyCurl {
    /// Why a notification was not delivered, fit to log: never a URL's path, query, user or a password.
    struct Failure: Error, CustomStringConvertible, Equatable {
        let description: String
    }

    /// The SMTP envelope and login.
    struct Mail {
        var from: String
        var to: [String]
        var user: String?
        var password: String?
    }

    static let connectTimeoutSeconds = 10
    /// The whole request, connection included: a receiver that trickles cannot hold the watcher.
    static let webhookTimeoutSeconds = 30
    /// An SMTP exchange is several round trips (greeting, TLS, AUTH, one RCPT per recipient).
    static let mailTimeoutSeconds = 60

    /// POSTs `json` to `url`; any answer but a 2xx is a failure that names the status.
    static func post(json: [UInt8], to url: String) throws(Failure) {
        let status = try perform(
            url: url, protocols: "http,https", body: json, timeout: webhookTimeoutSeconds, secrets: secretParts(of: url),
            lists: [(CURLOPT_HTTPHEADER, ["Content-Type: application/json", "Expect:"])]
        ) { handle in
            ceti_curl_setopt_long(handle, CURLOPT_POST, 1)
            ceti_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(json.count))
        }
        guard (200..<300).contains(status) else { throw Failure(description: "the receiver answered HTTP \(status)") }
    }

    /// Sends `message` (RFC 5322, CRLF lines) through the SMTP server at `url`: implicit TLS for
    /// smtps://, STARTTLS for smtp:// when the server offers it.
    static func send(_ message: [UInt8], mail: Mail, via url: String) throws(Failure) {
        let secrets = secretParts(of: url).filter { !$0.hasPrefix("/") } + [mail.password].compactMap { $0 }
        _ = try perform(
            url: url, protocols: "smtp,smtps", body: message, timeout: mailTimeoutSeconds, secrets: secrets,
            lists: [(CURLOPT_MAIL_RCPT, mail.to.map(envelope))]
        ) { handle in
            ceti_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            ceti_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(message.count))
            ceti_curl_setopt_string(handle, CURLOPT_MAIL_FROM, envelope(mail.from))
            let tls = url.lowercased().hasPrefix("smtps://") ? CURLUSESSL_ALL : CURLUSESSL_TRY
            ceti_curl_setopt_long(handle, CURLOPT_USE_SSL, Int(tls.rawValue))
            if let user = mail.user {
                ceti_curl_setopt_string(handle, CURLOPT_USERNAME, user)
                ceti_curl_setopt_string(handle, CURLOPT_PASSWORD, mail.password ?? "")
            }
        }
    }

    /// `Name <a@b>` or `a@b` as the SMTP envelope wants it: `<a@b>`.
    static func envelope(_ address: String) -> String {
        var a = Substring(address)
        if let open = a.lastIndex(of: "<"), let close = a[open...].firstIndex(of: ">") { a = a[a.index(after: open)..<close] }
        return "<" + a.trimmingCharacters(in: .whitespaces).filter { !$0.isWhitespace && $0 != "<" && $0 != ">" } + ">"
    }

    /// The parts of a URL that may carry a secret: the whole URL, its user info, and everything
    /// after its host (path, query: where webhook services put their token).
    static func secretParts(of url: String) -> [String] {
        var parts = [url]
        guard let scheme = url.range(of: "://") else { return parts }
        let rest = url[scheme.upperBound...]
        let end = rest.firstIndex { "/?#".contains($0) } ?? rest.endIndex
        let authority = rest[..<end]
        if let at = authority.lastIndex(of: "@") { parts.append(String(authority[..<at])) }
        if rest[end...].count > 1 { parts.append(String(rest[end...])) }
        return parts
    }

    /// `scheme://host:port` of a URL, without user info or path: what may be shown.
    static func displayAddress(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return "the configured server" }
        let rest = url[scheme.upperBound...]
        var authority = rest.prefix { !"/?#".contains($0) }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        return String(url[..<scheme.upperBound]) + authority
    }

    /// One transfer uploading `body`; returns the last response code (HTTP status, SMTP reply).
    /// `lists` are curl_slist options, kept alive for the transfer.
    private static func perform(
        url: String, protocols: String, body: [UInt8], timeout: Int, secrets: [String], lists: [(CURLoption, [String])],
        configure: (UnsafeMutableRawPointer) -> Void
    ) throws(Failure) -> Int {
        _ = CurlClient.globalInit
        guard let handle = curl_easy_init() else { throw Failure(description: "libcurl could not start a transfer (out of memory?)") }
        defer { curl_easy_cleanup(handle) }
        var slists: [UnsafeMutablePointer<curl_slist>?] = []
        defer { slists.forEach { curl_slist_free_all($0) } }
        for (option, items) in lists {
            let list = items.reduce(nil as UnsafeMutablePointer<curl_slist>?) { curl_slist_append($0, $1) }
            slists.append(list)
            ceti_curl_setopt_slist(handle, option, list)
        }
        // CurlTransfer's callbacks feed the body from memory (and rewind it if libcurl must resend).
        let transfer = CurlTransfer(request: HTTPRequest(method: "POST", url: "", body: .bytes(body)), limiter: nil, onBytesSent: nil)
        ceti_curl_setopt_string(handle, CURLOPT_URL, url)
        ceti_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, protocols)
        ceti_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        ceti_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, connectTimeoutSeconds)
        ceti_curl_setopt_long(handle, CURLOPT_TIMEOUT, timeout)
        ceti_curl_setopt_string(handle, CURLOPT_USERAGENT, "ceti/\(Ceti.version)")
        transfer.attach(to: handle, sendsBody: true)
        configure(handle)

        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let code = errorBuffer.withUnsafeMutableBufferPointer { buffer in
            ceti_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, buffer.baseAddress)
            defer { ceti_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, nil) }
            return withExtendedLifetime(transfer) { curl_easy_perform(handle) }
        }
        guard code == CURLE_OK else {
            let generic = String(cString: curl_easy_strerror(code))
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // libcurl's detail names hosts and ports, sometimes more: kept only when no secret is in it.
            let leaks = secrets.contains { !$0.isEmpty && detail.contains($0) }
            throw Failure(description: detail.isEmpty || leaks ? generic : detail)
        }
        var status = 0
        ceti_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return status
    }
}
