import Foundation

/// Finds SSH servers: connects to a port on many addresses at once (non-blocking sockets and
/// one poll loop, so a /24 takes about the timeout, not 254 times it) and keeps those whose
/// first bytes are an SSH banner. Blocking: run it on a thread of our own.
enum SSHScanner {
    static func scan(_ addresses: [UInt32], port: Int, timeout: Double = 1, batch: Int = 256) -> [String] {
        var found: [String] = []
        for start in stride(from: 0, to: addresses.count, by: batch) {
            found += scanBatch(Array(addresses[start..<min(addresses.count, start + batch)]), port: port, timeout: timeout)
        }
        return found
    }

    private static func scanBatch(_ addresses: [UInt32], port: Int, timeout: Double) -> [String] {
        var fds: [Int32] = []
        var owners: [Int32: UInt32] = [:]
        for a in addresses {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = in_port_t(UInt16(port).bigEndian)
            sin.sin_addr.s_addr = a.bigEndian
            let r = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if r == 0 || errno == EINPROGRESS {
                fds.append(fd)
                owners[fd] = a
            } else {
                close(fd)
            }
        }
        defer { for fd in fds { close(fd) } }
        // Phase 1: connections; phase 2: banners. Each phase gets the whole timeout.
        var connected: [Int32] = []
        var pending = Set(fds)
        var deadline = Date().addingTimeInterval(timeout)
        while !pending.isEmpty, Date() < deadline {
            var pfds = pending.map { pollfd(fd: $0, events: Int16(POLLOUT), revents: 0) }
            let ms = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            guard poll(&pfds, nfds_t(pfds.count), ms) > 0 else { continue }
            for p in pfds where p.revents != 0 {
                pending.remove(p.fd)
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &len)
                if err == 0 { connected.append(p.fd) }
            }
        }
        var banners: [Int32: [UInt8]] = [:]
        pending = Set(connected)
        deadline = Date().addingTimeInterval(timeout)
        while !pending.isEmpty, Date() < deadline {
            var pfds = pending.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ms = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            guard poll(&pfds, nfds_t(pfds.count), ms) > 0 else { continue }
            for p in pfds where p.revents != 0 {
                var buf = [UInt8](repeating: 0, count: 64)
                let n = read(p.fd, &buf, buf.count)
                if n > 0 { banners[p.fd, default: []] += buf[0..<n] }
                if n <= 0 || banners[p.fd, default: []].count >= 4 { pending.remove(p.fd) }
            }
        }
        return banners.filter { $0.value.starts(with: Array("SSH-".utf8)) }
            .compactMap { owners[$0.key] }.sorted().map(Subnet.format)
    }
}
