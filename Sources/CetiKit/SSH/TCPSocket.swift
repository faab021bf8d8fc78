import Foundation

/// A blocking TCP connection opened with a deadline (libssh2 wants a connected socket).
enum TCPSocket {
    enum ConnectError: Error, CustomStringConvertible {
        case resolve(host: String, message: String)
        case refused(host: String, port: Int, message: String)
        case timeout(host: String, port: Int, seconds: Double)
        var description: String {
            switch self {
            case .resolve(let h, let m): return "cannot resolve \(h): \(m)"
            case .refused(let h, let p, let m): return "cannot connect to \(h):\(p): \(m)"
            case .timeout(let h, let p, let s): return "no answer from \(h):\(p) within \(String(format: "%g", s)) s"
            }
        }
    }

    /// Connects to an IPv4/IPv6 address or name; the returned descriptor is blocking again.
    static func connect(host: String, port: Int, timeout: Double) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw ConnectError.resolve(host: host, message: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(list) }
        var lastError: ConnectError = .refused(host: host, port: port, message: "no address")
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), a.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            var r = Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen)
            if r != 0 && errno == EINPROGRESS {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let ready = poll(&pfd, 1, Int32(timeout * 1000))
                if ready == 0 {
                    close(fd)
                    lastError = .timeout(host: host, port: port, seconds: timeout)
                    continue
                }
                var soError: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
                r = soError == 0 ? 0 : -1
                errno = soError
            }
            if r != 0 {
                lastError = .refused(host: host, port: port, message: String(cString: strerror(errno)))
                close(fd)
                continue
            }
            _ = fcntl(fd, F_SETFL, flags)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return fd
        }
        throw lastError
    }
}
