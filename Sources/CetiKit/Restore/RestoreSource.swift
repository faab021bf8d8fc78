import Foundation

/// Where `ceti restore` reads a manifest: a local file (or a folder holding `manifest.json`), or
/// S3 — `s3://BUCKET/KEY.json`, or a run's device folder `s3://BUCKET/PREFIX/_runs/RUN/DEVICE/`.
public enum RestoreSource: Sendable, Equatable, CustomStringConvertible {
    case file(String)
    case s3(bucket: String, key: String)

    public init(parsing text: String) throws {
        guard text.lowercased().hasPrefix("s3://") else {
            self = .file(text)
            return
        }
        let rest = text.dropFirst(5)
        let bucket = String(rest.prefix { $0 != "/" })
        let path = rest.dropFirst(bucket.count).split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        guard !bucket.isEmpty, !path.isEmpty else {
            throw UsageError("\(text): give s3://BUCKET/PREFIX/_runs/RUN/DEVICE/ or the s3:// URL of a manifest.json")
        }
        // A folder (or anything that is not a .json) names the manifest inside it.
        let key = path.lowercased().hasSuffix(".json") && !text.hasSuffix("/") ? path : path + "/" + Manifest.fileName
        self = .s3(bucket: bucket, key: key)
    }

    public var description: String {
        switch self {
        case .file(let path): return path
        case .s3(let bucket, let key): return "s3://\(bucket)/\(key.printable)"
        }
    }

    /// The bucket the manifest was read from, for a manifest in S3.
    var bucket: String? {
        guard case .s3(let bucket, _) = self else { return nil }
        return bucket
    }

    /// Reads and decodes the manifest. `store` (needed only for a manifest in S3) is also asked
    /// whether `_COMPLETE` stands beside it (false: the run that wrote it stopped between the two,
    /// which leaves the manifest itself whole: it is written only after every object it lists was
    /// verified).
    func load(store: (any ObjectStore)?) async throws -> (manifest: Manifest, complete: Bool?) {
        switch self {
        case .file(var path):
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
                throw UsageError("\(path): no such file; give a manifest.json, or its s3:// URL")
            }
            if isFolder.boolValue { path += "/" + Manifest.fileName }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw UsageError("\(path): cannot be read; give a readable manifest.json")
            }
            return (try Self.decode(Array(data), from: path), nil)
        case .s3(let bucket, let key):
            guard let store else { throw UsageError("internal: no S3 connection to read \(description)") }
            guard let object = try await store.getObject(bucket: bucket, key: key) else {
                throw UsageError("\(description): no such object; list the run's folder with `aws s3 ls` and give its device folder")
            }
            let folder = String(key.dropLast(Manifest.fileName.count))
            let complete =
                key.hasSuffix("/" + Manifest.fileName)
                ? try await store.headObject(bucket: bucket, key: folder + Manifest.completeMarker) != nil : nil
            return (try Self.decode(object.body, from: description), complete)
        }
    }

    static func decode(_ bytes: [UInt8], from origin: String) throws -> Manifest {
        let manifest: Manifest
        do {
            manifest = try Manifest.decode(bytes)
        } catch {
            throw UsageError("\(origin) is not a ceti manifest (\(Self.reason(error))); give a run's manifest.json")
        }
        guard manifest.schemaVersion <= Manifest.currentSchema else {
            throw UsageError(
                "\(origin) is a manifest of schema \(manifest.schemaVersion), newer than this ceti reads (\(Manifest.currentSchema)): "
                    + "update ceti")
        }
        return manifest
    }

    private static func reason(_ error: Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, _): return "no \"\(key.stringValue)\""
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            let path = c.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "not JSON of a manifest" : "bad \(path)"
        default: return "unreadable"
        }
    }
}
