/// Turns raw PCM bytes into the signed samples libFLAC takes, and into FLAC's MD5 layout
/// (signed little-endian, the sample's whole bytes).
enum PCM {
    static func decode(_ bytes: UnsafeRawBufferPointer, format: RawFormat, into samples: inout [Int32],
                       littleEndian le: inout [UInt8]) {
        let width = format.bytesPerSample
        let count = bytes.count / width
        let bias: Int32 = format.signed ? 0 : 1 << (format.bitsPerSample - 1)
        samples.withUnsafeMutableBufferPointer { out in
            le.withUnsafeMutableBufferPointer { md5 in
                for i in 0..<count {
                    let o = i * width
                    var v: Int32
                    switch width {
                    case 1:
                        v = format.signed ? Int32(Int8(bitPattern: bytes[o])) : Int32(bytes[o])
                    case 2:
                        let u = format.bigEndian ? UInt16(bytes[o]) << 8 | UInt16(bytes[o + 1])
                                                 : UInt16(bytes[o + 1]) << 8 | UInt16(bytes[o])
                        v = format.signed ? Int32(Int16(bitPattern: u)) : Int32(u)
                    default:
                        let u = format.bigEndian
                            ? UInt32(bytes[o]) << 16 | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2])
                            : UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o])
                        // Sign-extend 24 bits.
                        v = format.signed ? Int32(bitPattern: u << 8) >> 8 : Int32(u)
                    }
                    v -= bias
                    out[i] = v
                    for b in 0..<width { md5[o + b] = UInt8(truncatingIfNeeded: v >> (8 * b)) }
                }
            }
        }
    }
}
