/// How a file is cut into parts, and the ETag S3 will give the object.
public struct PartLayout: Sendable, Equatable {
    public static let minPartSize: Int64 = 5 << 20
    public static let maxPartSize: Int64 = 5 << 30
    public static let maxParts: Int64 = 10_000
    public static let maxSinglePut: Int64 = 5 << 30

    public let size: Int64
    public let partSize: Int64

    /// `requested` grows (in whole MiB) until the file fits in 10,000 parts.
    public init(size: Int64, requestedPartSize requested: Int64) {
        self.size = size
        let needed = (size + Self.maxParts - 1) / Self.maxParts
        let mib: Int64 = 1 << 20
        self.partSize = max(requested, (needed + mib - 1) / mib * mib)
    }

    init(size: Int64, exactPartSize: Int64) {
        self.size = size
        self.partSize = exactPartSize
    }

    /// One PUT up to the part size; multipart above it.
    public var isMultipart: Bool { size > partSize }

    public var partCount: Int { isMultipart ? Int((size + partSize - 1) / partSize) : 1 }

    /// Offset and length of part `number` (1-based).
    public func range(ofPart number: Int) -> (offset: Int64, length: Int64) {
        guard isMultipart else { return (0, size) }
        let offset = Int64(number - 1) * partSize
        return (offset, min(partSize, size - offset))
    }

    /// S3's ETag: the MD5 of the content for one PUT; for multipart the MD5 of the parts' binary
    /// MD5s, a dash, and the number of parts.
    public func etag(partMD5s: [[UInt8]]) -> String {
        guard isMultipart else { return partMD5s.first?.hex ?? "" }
        var d = Digest(.md5)
        for m in partMD5s { d.update(m) }
        return d.finalize().hex + "-\(partMD5s.count)"
    }
}
