import Foundation

/// Asks S3, just before a tag file is deleted, whether the object that proves it is still there
/// as the ledger recorded it (size and ETag). The ledger's memory alone proves nothing: objects
/// get deleted, buckets emptied, keys overwritten.
struct ObjectCheck: Sendable {
    let bucket: String
    /// HEAD of a key in `bucket`; nil when there is no such object. Blocking.
    let head: @Sendable (String) throws -> ObjectHead?

    init(bucket: String, head: @escaping @Sendable (String) throws -> ObjectHead?) {
        self.bucket = bucket
        self.head = head
    }

    /// Over a real S3 client, from a blocking thread.
    init(s3: any ObjectStore, bucket: String) {
        self.init(bucket: bucket) { key in try awaitBlocking { try await s3.headObject(bucket: bucket, key: key) } }
    }

    /// nil when S3 holds the object as recorded, else why it is no proof. A refusal of the
    /// credentials or a missing bucket is thrown: it ends the run (exit 2), as everywhere.
    func problem(with object: ObjectRecord) throws -> String? {
        let address = "s3://\(bucket)/\(object.key.printable)"
        do {
            guard let h = try head(object.key) else {
                return "\(address) is gone from S3 (the ledger recorded it verified); upload it again first"
            }
            guard h.size == object.size, h.etag == object.etag else {
                return "\(address) now holds other content (\(ByteSize.format(h.size)), ETag \(h.etag); recorded "
                    + "\(ByteSize.format(object.size)), ETag \(object.etag)); upload it again first"
            }
            return nil
        } catch let e as S3Error where e.isFatal {
            throw e
        } catch {
            return "could not confirm \(address) is still in S3 (\(error))"
        }
    }
}
