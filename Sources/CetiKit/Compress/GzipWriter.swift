import CDeflate
import CZlib
import Foundation

/// gzip for sensor CSVs: the input is cut into 1 MiB blocks, each compressed (libdeflate, on as
/// many threads as there are cores) into a complete gzip member; the members are concatenated,
/// which every gunzip reads as one file. The output is then inflated again with zlib — an
/// independent implementation — and must give back the input's size and SHA-256.
enum GzipWriter {
    static let blockSize = 1 << 20

    enum GzipError: Error, CustomStringConvertible {
        case verify(path: String, message: String)
        case empty(path: String)

        var description: String {
            switch self {
            case .verify(let path, let message): return "\(path) did not verify: \(message); output discarded, original kept"
            case .empty(let path): return "\(path) is empty; left untouched"
            }
        }
    }

    /// Compresses `inputFD` into `outputFD`; returns the input's SHA-256. `observe` (recording QC)
    /// sees every input byte, in order, in the read that hashes it.
    static func compress(
        inputFD: Int32, inputPath: String, size: Int64, level: Int, outputFD: Int32,
        outputPath: String, threads: Int, observe: ((UnsafeRawBufferPointer) -> Void)? = nil, progress: ((Int64) -> Void)? = nil
    ) throws -> [UInt8] {
        guard size > 0 else { throw GzipError.empty(path: inputPath) }
        let blocks = Blocks(workers: max(1, threads), level: level)
        var sha = Digest(.sha256)
        var offset: Int64 = 0
        while offset < size {
            // Read up to one block per worker, compress them at once, write them in order.
            var n = 0
            while n < blocks.workers && offset < size {
                let want = Int(min(Int64(blockSize), size - offset))
                let got = try FileIO.readFully(inputFD, inputPath, blocks.inputs[n], want, at: offset)
                guard got == want else { throw FileIOError.read(path: inputPath, message: "it shrank while being read") }
                let bytes = UnsafeRawBufferPointer(rebasing: blocks.inputs[n][0..<got])
                sha.update(bytes)
                observe?(bytes)
                blocks.lengths[n] = got
                offset += Int64(got)
                n += 1
            }
            DispatchQueue.concurrentPerform(iterations: n) { blocks.compress($0) }
            for i in 0..<n {
                try FileIO.writeAll(outputFD, outputPath, UnsafeRawBufferPointer(rebasing: blocks.outputs[i][0..<blocks.produced[i]]))
                progress?(Int64(blocks.lengths[i]))
            }
        }
        return sha.finalize()
    }

    /// One compressor and one pair of buffers per worker; worker i touches only index i.
    final class Blocks: @unchecked Sendable {
        let workers: Int
        let compressors: [OpaquePointer]
        let bound: Int
        let inputs: [UnsafeMutableRawBufferPointer]
        let outputs: [UnsafeMutableRawBufferPointer]
        // Raw memory, not arrays: workers write their own slots at the same time.
        let lengths: UnsafeMutablePointer<Int>
        let produced: UnsafeMutablePointer<Int>

        init(workers: Int, level: Int) {
            self.workers = workers
            compressors = (0..<workers).map { _ in libdeflate_alloc_compressor(Int32(level))! }
            bound = libdeflate_gzip_compress_bound(compressors[0], GzipWriter.blockSize)
            inputs = (0..<workers).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: GzipWriter.blockSize, alignment: 16) }
            outputs = (0..<workers).map { [bound] _ in UnsafeMutableRawBufferPointer.allocate(byteCount: bound, alignment: 16) }
            lengths = .allocate(capacity: workers)
            produced = .allocate(capacity: workers)
        }

        deinit {
            compressors.forEach { libdeflate_free_compressor($0) }
            (inputs + outputs).forEach { $0.deallocate() }
            lengths.deallocate()
            produced.deallocate()
        }

        func compress(_ i: Int) {
            produced[i] = libdeflate_gzip_compress(compressors[i], inputs[i].baseAddress, lengths[i], outputs[i].baseAddress, bound)
        }
    }

    /// Inflates every member of a gzip stream with zlib as its bytes are fed, hashing what comes
    /// out (and handing it to `output`, when given: a restore writes it): the compressed output is
    /// checked in the same read that hashes it for the upload.
    final class Inflater {
        private var stream = z_stream()
        private let outBuf = UnsafeMutablePointer<UInt8>.allocate(capacity: 1 << 20)
        private var sha: Digest? = Digest(.sha256)
        private var total: Int64 = 0
        private var ended = false
        private var problem: String?
        private var outputError: Error?
        private let output: ((UnsafeRawBufferPointer) throws -> Void)?
        let path: String

        init(path: String, output: ((UnsafeRawBufferPointer) throws -> Void)? = nil) throws {
            self.path = path
            self.output = output
            guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                outBuf.deallocate()
                throw GzipError.verify(path: path, message: "zlib could not start")
            }
        }

        deinit {
            inflateEnd(&stream)
            outBuf.deallocate()
        }

        func feed(_ bytes: UnsafeRawBufferPointer) {
            guard problem == nil, outputError == nil, let base = bytes.baseAddress, bytes.count > 0 else { return }
            stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: UInt8.self))
            stream.avail_in = UInt32(bytes.count)
            while stream.avail_in > 0 {
                if ended {
                    // Another member follows.
                    inflateReset(&stream)
                    ended = false
                }
                stream.next_out = outBuf
                stream.avail_out = 1 << 20
                let rc = CZlib.inflate(&stream, Z_NO_FLUSH)
                let produced = UnsafeRawBufferPointer(start: outBuf, count: (1 << 20) - Int(stream.avail_out))
                sha?.update(produced)
                total += Int64(produced.count)
                do { try output?(produced) } catch {
                    outputError = error
                    return
                }
                if rc == Z_STREAM_END { ended = true; continue }
                guard rc == Z_OK || rc == Z_BUF_ERROR else {
                    problem = "zlib: " + (stream.msg.map { String(cString: $0) } ?? "error \(rc)")
                    return
                }
            }
        }

        /// The inflated size and SHA-256 of everything fed.
        func finish() throws -> (size: Int64, sha256: [UInt8]) {
            if let outputError { throw outputError }
            if let problem { throw GzipError.verify(path: path, message: problem) }
            guard ended, let digest = sha.take() else { throw GzipError.verify(path: path, message: "the gzip stream is truncated") }
            return (total, digest.finalize())
        }
    }

}
