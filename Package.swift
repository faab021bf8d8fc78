// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ceti",
    // macOS 14: Hummingbird 2's API (the status page's HTTP server) is available from macOS 14 on.
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ceti", targets: ["ceti"]),
        .library(name: "CetiKit", targets: ["CetiKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        // The watcher's status page: Hummingbird serves it; NIO, swift-log and ServiceLifecycle are
        // Hummingbird's own, named here because StatusServer reads the bound port, quiets the
        // server's log and shuts it down gracefully.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C libraries from Debian's -dev packages, each through a four-line module map.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CSSH2", pkgConfig: "libssh2", providers: [.apt(["libssh2-1-dev"])]),
        .systemLibrary(name: "CFLAC", pkgConfig: "flac", providers: [.apt(["libflac-dev"])]),
        .systemLibrary(name: "CDeflate", pkgConfig: "libdeflate", providers: [.apt(["libdeflate-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Typed wrappers for libcurl's variadic curl_easy_setopt/getinfo, nothing more.
        .target(name: "CCurlShim", dependencies: ["CCurl"]),
        // statx for file birth times (needs _GNU_SOURCE), nothing more.
        .target(name: "CSysShim"),
        .target(
            name: "CetiKit",
            dependencies: [
                "CCurl", "CCurlShim", "CSysShim", "COpenSSL", "CSQLite", "CSSH2", "CFLAC", "CDeflate", "CZlib",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "ceti",
            dependencies: [
                "CetiKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "CetiKitTests",
            dependencies: ["CetiKit"],
            exclude: ["botocore_reference.py"]
        ),
    ]
)
