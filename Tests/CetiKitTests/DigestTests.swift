import Testing

@testable import CetiKit

@Suite struct DigestTests {
    @Test func knownDigests() {
        #expect(Digest.sha256(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.md5(Array("".utf8)).hex == "d41d8cd98f00b204e9800998ecf8427e")
        // RFC 4231 test case 2.
        #expect(
            Digest.hmacSHA256(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8)).hex
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func hexRoundTrip() {
        let bytes: [UInt8] = [0, 1, 0xab, 0xff]
        #expect([UInt8](hex: bytes.hex) == bytes)
        #expect([UInt8](hex: "zz") == nil)
    }
}
