import Foundation

/// The registered device IDs: the lines of `Device ID List.txt` at the bucket root, cached
/// locally with their ETag so that an offload on a boat without uplink still checks the ID.
public struct DeviceRegistry: Sendable {
    public static let objectKey = "Device ID List.txt"

    public var ids: [String]
    /// Where the list came from, for the operator: "s3://b/Device ID List.txt", "cache from 3 h ago", a file.
    public var source: String

    public static func parse(_ text: String) -> [String] {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    public static func cachePath(bucket: String, environment: [String: String]) -> String {
        let base =
            environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.cache")
        return "\(base)/ceti/device-ids-\(bucket).txt"
    }

    public static func fromFile(_ path: String) throws -> DeviceRegistry {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw UsageError("cannot read --registry \(path): check the path")
        }
        return DeviceRegistry(ids: parse(text), source: path)
    }

    /// The bucket's list, refreshing the cache; the cache (with its age) when S3 cannot be reached.
    public static func fetch(s3: any ObjectStore, bucket: String, cachePath: String) async throws -> DeviceRegistry {
        do {
            guard let (body, _) = try await s3.getObject(bucket: bucket, key: objectKey) else {
                throw UsageError("s3://\(bucket)/\(objectKey) does not exist: register the devices there, or pass --registry FILE")
            }
            try? FileManager.default.createDirectory(
                atPath: (cachePath as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true)
            try? Data(body).write(to: URL(fileURLWithPath: cachePath), options: .atomic)
            return DeviceRegistry(ids: parse(String(decoding: body, as: UTF8.self)), source: "s3://\(bucket)/\(objectKey)")
        } catch let e as S3Error where !e.isFatal {
            // Offline (or S3 failing): the last copy we fetched, saying how old it is.
            guard let text = try? String(contentsOfFile: cachePath, encoding: .utf8),
                let mtime = (try? FileManager.default.attributesOfItem(atPath: cachePath))?[.modificationDate] as? Date
            else {
                throw UsageError(
                    "cannot fetch s3://\(bucket)/\(objectKey) (\(e)) and there is no cached copy: "
                        + "pass --registry FILE with the registered device IDs")
            }
            let hours = Date().timeIntervalSince(mtime) / 3600
            let age = hours < 1 ? "\(Int(hours * 60)) min" : hours < 48 ? "\(Int(hours)) h" : "\(Int(hours / 24)) days"
            return DeviceRegistry(ids: parse(text), source: "cached copy from \(age) ago (S3 unreachable: \(e))")
        }
    }

    /// Registered IDs close to `id`: equal ignoring case, or a few edits away.
    public func suggestions(for id: String) -> [String] {
        let lower = id.lowercased()
        let limit = max(2, id.count / 4)
        var scored: [(id: String, distance: Int)] = []
        for candidate in ids {
            let d = Self.distance(lower, candidate.lowercased())
            if d <= limit { scored.append((candidate, d)) }
        }
        scored.sort { $0.distance != $1.distance ? $0.distance < $1.distance : $0.id < $1.id }
        return scored.prefix(3).map { $0.id }
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        var prev = Array(0...b.count)
        for i in 1...a.count {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }
}
