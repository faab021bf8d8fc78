import Foundation

/// One HTTP request as ceti sends it: the body comes from memory or straight from a file range,
/// so a multi-gigabyte part is never held in memory.
public struct HTTPRequest: Sendable {
    public enum Body: Sendable {
        case empty
        case bytes([UInt8])
        /// `length` bytes of the open file `descriptor` starting at `offset` (read with pread, so several
        /// requests may share one descriptor).
        case file(descriptor: Int32, offset: Int64, length: Int64)

        public var length: Int64 {
            switch self {
            case .empty: return 0
            case .bytes(let b): return Int64(b.count)
            case .file(_, _, let length): return length
            }
        }
    }

    public var method: String
    public var url: String
    public var headers: [(String, String)]
    public var body: Body

    public init(method: String, url: String, headers: [(String, String)] = [], body: Body = .empty) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}
