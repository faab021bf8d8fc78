/// A mistake in how ceti was called or configured: exit status 2, one line saying what to fix.
public struct UsageError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}
