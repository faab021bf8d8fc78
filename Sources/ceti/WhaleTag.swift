import ArgumentParser

struct WhaleTag: NotYetImplemented {
    static let configuration = CommandConfiguration(
        commandName: "whaletag",
        abstract: "Discover whale tags on the LAN, pull /data over SFTP, clean them (not implemented yet).")
    @Argument(parsing: .allUnrecognized) var arguments: [String] = []
}
