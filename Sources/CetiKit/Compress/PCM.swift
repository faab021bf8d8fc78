/// Turns raw PCM bytes into the signed samples libFLAC takes, and into FLAC's MD5 layout
/// (signed little-endian, the sample's whole bytes). One tight loop per layout: this runs over
/// every byte of every recording.
enum PCM {
    static func decode(
        _ bytes: UnsafeRawBufferPointer, format: RawFormat, into samples: inout [Int32],
        littleEndian le: inout [UInt8]
    ) {
        let width = format.bytesPerSample
        let count = bytes.count / width
        let bias: Int32 = format.signed ? 0 : 1 << (format.bitsPerSample - 1)
        let big = format.bigEndian
        let signed = format.signed
        samples.withUnsafeMutableBufferPointer { out in
            le.withUnsafeMutableBufferPointer { md5 in
                let src = bytes.bindMemory(to: UInt8.self)
                switch width {
                case 2:
                    let (h, l) = big ? (0, 1) : (1, 0)
                    for i in 0..<count {
                        let u = UInt16(src[2 &* i &+ h]) << 8 | UInt16(src[2 &* i &+ l])
                        let v = (signed ? Int32(Int16(bitPattern: u)) : Int32(u)) &- bias
                        out[i] = v
                        md5[2 &* i] = UInt8(truncatingIfNeeded: v)
                        md5[2 &* i &+ 1] = UInt8(truncatingIfNeeded: v >> 8)
                    }
                case 3:
                    let (h, m, l) = big ? (0, 1, 2) : (2, 1, 0)
                    for i in 0..<count {
                        let o = 3 &* i
                        let u = UInt32(src[o &+ h]) << 16 | UInt32(src[o &+ m]) << 8 | UInt32(src[o &+ l])
                        // Sign-extend 24 bits.
                        let v = (signed ? Int32(bitPattern: u << 8) >> 8 : Int32(bitPattern: u)) &- bias
                        out[i] = v
                        md5[o] = UInt8(truncatingIfNeeded: v)
                        md5[o &+ 1] = UInt8(truncatingIfNeeded: v >> 8)
                        md5[o &+ 2] = UInt8(truncatingIfNeeded: v >> 16)
                    }
                default:
                    for i in 0..<count {
                        let v = (signed ? Int32(Int8(bitPattern: src[i])) : Int32(src[i])) &- bias
                        out[i] = v
                        md5[i] = UInt8(truncatingIfNeeded: v)
                    }
                }
            }
        }
    }
}
