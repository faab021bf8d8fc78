import ArgumentParser

struct GeneralOffload: NotYetImplemented {
    static let configuration = CommandConfiguration(
        commandName: "general_offload",
        abstract: "Verified copy of a drone/GoPro/mooring card into staging and backup (not implemented yet).")
    @Argument(parsing: .allUnrecognized) var arguments: [String] = []
}
