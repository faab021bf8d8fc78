import ArgumentParser

struct Compress: NotYetImplemented {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "FLAC-encode raw hydrophone audio and gzip sensor CSV (not implemented yet).")
    @Argument(parsing: .allUnrecognized) var arguments: [String] = []
}
