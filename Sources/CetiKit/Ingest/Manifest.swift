import Foundation

/// What one ingest run delivered from one device: every file as it was on the device, its
/// compressed derivative and the verified S3 object holding it. Written only after every object it
/// lists is verified, and followed by an empty `_COMPLETE`: a reader that finds `_COMPLETE` can
/// trust the manifest next to it. Deterministic (sorted keys, no clock), so a resumed run writes
/// the very same bytes again.
public struct Manifest: Codable, Sendable, Equatable {
    public static let currentSchema = 1
    public static let fileName = "manifest.json"
    public static let completeMarker = "_COMPLETE"
    /// The folder under the key prefix that holds the runs; no device's files are ever keyed there
    /// (device folders sit under dates, and `_` starts no tag's hostname).
    public static let runsFolder = "_runs"

    public var schemaVersion: Int
    public var runId: String
    public var runStartedAt: String
    public var device: String
    public var host: String
    public var bucket: String
    public var files: [Entry]
    /// Recording QC of the device over the files listed (issue #16): its verdict, problems and
    /// recordings' timeline; absent when no file was measured.
    public var qc: DeviceQC? = nil

    public struct Entry: Codable, Sendable, Equatable {
        /// The name on the device, its size, modification time (the device's clock) and SHA-256.
        /// Names (and remote paths, derivative names, keys) are in name form (`NameCodec`): the
        /// name itself, or — for a name that is not UTF-8 or already holds `%` + two hex digits —
        /// its invalid bytes and every `%` written `%XX`. Lossless: the bytes always come back.
        public var name: String
        public var remotePath: String
        public var size: Int64
        public var mtime: Int64
        public var sha256: String
        /// The FLAC or gzip made of it; null when the file was uploaded as it was (FLAC firmware,
        /// other files, or one that could not be encoded: then `note` says why).
        public var derivative: Derivative?
        public var object: Object
        /// Why a file that is usually encoded was uploaded as it is (a `.raw` cut off mid-frame).
        public var note: String? = nil
        /// What recording QC measured in the file, and the problems found; absent when it was not
        /// measured (QC off, a file of another kind, or an empty one).
        public var qc: FileQC? = nil

        enum CodingKeys: String, CodingKey { case name, remotePath, size, mtime, sha256, derivative, object, note, qc }

        /// `derivative` always written (null when none), `note` only when there is one.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(remotePath, forKey: .remotePath)
            try c.encode(size, forKey: .size)
            try c.encode(mtime, forKey: .mtime)
            try c.encode(sha256, forKey: .sha256)
            try c.encode(derivative, forKey: .derivative)
            try c.encode(object, forKey: .object)
            try c.encodeIfPresent(note, forKey: .note)
            try c.encodeIfPresent(qc, forKey: .qc)
        }
    }

    public struct Derivative: Codable, Sendable, Equatable {
        public var name: String
        public var size: Int64
        public var sha256: String
        public var codec: String
        public var parameters: String
        /// FLAC only: the MD5 of the decoded PCM, as in STREAMINFO.
        public var flacMd5: String?
        /// FLAC of raw PCM only: the original's byte layout, to turn the FLAC back into it.
        public var layout: Layout? = nil
    }

    /// How the original raw PCM was laid out, and where ceti read that.
    public struct Layout: Codable, Sendable, Equatable {
        public var channels: Int
        public var bitsPerSample: Int
        public var sampleRate: Int
        /// `big` or `little`.
        public var endian: String
        public var signed: Bool
        /// `name` (a .bin says it), the tag's `data_config_<ts>.txt`, or `options` (ceti's raw
        /// layout flags); null when the run that compressed it did not record it.
        public var from: String?

        init(_ format: RawFormat, from: String?) {
            channels = format.channels
            bitsPerSample = format.bitsPerSample
            sampleRate = format.sampleRate
            endian = format.bigEndian ? "big" : "little"
            signed = format.signed
            self.from = from
        }
    }

    public struct Object: Codable, Sendable, Equatable {
        public var key: String
        public var size: Int64
        public var sha256: String
        public var etag: String
    }

    /// `{prefix}/_runs/<run id>/<device>/`: one folder per run, so two runs never overwrite each other.
    public static func folder(prefix: String, run: String, device: String) -> String {
        ([prefix, runsFolder, run, device].filter { !$0.isEmpty }.joined(separator: "/")) + "/"
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }()

    public func encoded() throws -> [UInt8] { Array(try Self.encoder.encode(self)) + [0x0A] }

    public static func decode(_ bytes: [UInt8]) throws -> Manifest { try decoder.decode(Manifest.self, from: Data(bytes)) }
}
