/// Failures below HTTP: the request never got a complete answer.
public enum HTTPError: Error, CustomStringConvertible, Sendable {
    /// libcurl gave up: connection refused or reset, DNS, TLS, or a stall (no bytes moving for too long).
    case transport(code: Int32, message: String, url: String)
    /// The file that feeds a request body could not be read.
    case bodyRead(errno: Int32)

    public var description: String {
        switch self {
        case .transport(_, let message, let url): return "\(message) (\(url))"
        case .bodyRead(let e): return "could not read the file being sent: \(String(cString: strerror(e)))"
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
