import Foundation
import Testing

/// The house rule of README "Layout": the commands' drivers (`*Run`) are composed of steps and
/// called by the executable only; no library file reaches into another command's driver.
@Suite struct LayoutTests {
    static let library = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/CetiKit")

    @Test func noLibraryFileUsesAnotherCommandsDriver() throws {
        let files = try #require(FileManager.default.enumerator(atPath: Self.library.path)).compactMap { $0 as? String }
            .filter { $0.hasSuffix(".swift") }
        let drivers = files.map { ($0 as NSString).lastPathComponent }.filter { $0.hasSuffix("Run.swift") }
            .map { String($0.dropLast(".swift".count)) }
        #expect(drivers.count >= 5, "\(drivers)")
        var reaching: [String] = []
        for file in files where !file.hasSuffix("RunSummary.swift") {
            let text = try String(contentsOf: Self.library.appendingPathComponent(file), encoding: .utf8)
            let own = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
            for driver in drivers where driver != own && text.contains("\(driver).") {
                reaching.append("\(file) uses \(driver)")
            }
        }
        #expect(reaching.isEmpty, "\(reaching)")
    }
}
