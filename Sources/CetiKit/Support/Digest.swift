import COpenSSL
import Foundation

/// A streaming message digest over OpenSSL's EVP interface (SHA-256 and MD5 are all S3 needs).
public struct Digest: ~Copyable {
    public enum Algorithm: Sendable { case sha256, md5 }

    private let ctx: OpaquePointer

    public init(_ algorithm: Algorithm) {
        guard let ctx = EVP_MD_CTX_new() else { fatalError("OpenSSL: out of memory creating a digest") }
        self.ctx = ctx
        let md = algorithm == .sha256 ? EVP_sha256() : EVP_md5()
        precondition(EVP_DigestInit_ex(ctx, md, nil) == 1, "OpenSSL: digest init failed")
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        EVP_DigestUpdate(ctx, base, buffer.count)
    }

    public mutating func update(_ bytes: some ContiguousBytes) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Ends the digest; the value can be read once.
    public consuming func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &out, &length)
        return Array(out.prefix(Int(length)))
    }

    public static func sha256(_ bytes: some ContiguousBytes) -> [UInt8] {
        var d = Digest(.sha256)
        d.update(bytes)
        return d.finalize()
    }

    public static func md5(_ bytes: some ContiguousBytes) -> [UInt8] {
        var d = Digest(.md5)
        d.update(bytes)
        return d.finalize()
    }

    public static func hmacSHA256(key: some ContiguousBytes, data: some ContiguousBytes) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        key.withUnsafeBytes { k in
            data.withUnsafeBytes { d in
                _ = HMAC(
                    EVP_sha256(), k.baseAddress, Int32(k.count),
                    d.baseAddress?.assumingMemoryBound(to: UInt8.self), d.count, &out, &length)
            }
        }
        return out
    }
}

extension Array where Element == UInt8 {
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var chars = [UInt8]()
        chars.reserveCapacity(count * 2)
        for b in self {
            chars.append(digits[Int(b >> 4)])
            chars.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: chars, as: UTF8.self)
    }

    public var base64: String { Data(self).base64EncodedString() }

    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = Self.nibble(utf8[i]), let lo = Self.nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        self = out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
