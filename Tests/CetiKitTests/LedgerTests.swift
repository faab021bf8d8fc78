import Foundation
import Testing

@testable import CetiKit

@Suite struct LedgerTests {
    func tempPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("ceti-ledger-\(UUID())/l.sqlite").path
    }

    let fp = FileFingerprint(size: 100, mtimeNanoseconds: 123, inode: 9)

    func object(_ key: String, device: String = "wt-a") -> ObjectRecord {
        ObjectRecord(
            bucket: "b", key: key, device: device, localPath: "/x/\(key)", size: 100, sha256: "s", etag: "e",
            partSize: 0, verifiedAt: "2026-11-22T00:00:00Z")
    }

    @Test func createsPrivateFileAndKeepsPlannedDate() throws {
        let path = tempPath()
        let ledger = try Ledger(path: path)
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        try ledger.insertNewFiles([FileRecord(path: "/a", fingerprint: fp, sha256: nil, plannedDate: "2026-01-01")])
        // A later first-sighting must not move the date.
        try ledger.insertNewFiles([FileRecord(path: "/a", fingerprint: fp, sha256: nil, plannedDate: "2026-02-02")])
        try ledger.saveFile(FileRecord(path: "/a", fingerprint: fp, sha256: "abc", plannedDate: "ignored"))
        let rec = try #require(try ledger.file(path: "/a"))
        #expect(rec.plannedDate == "2026-01-01" && rec.sha256 == "abc" && rec.fingerprint == fp)
    }

    @Test func verifiedObjectClosesItsUploadInOneStep() throws {
        let ledger = try Ledger(path: tempPath())
        let up = UploadRecord(
            bucket: "b", key: "k", uploadID: "u1", device: "wt-a", localPath: "/x/k", fingerprint: fp,
            sha256: "s", partSize: 5 << 20, startedAt: "t")
        try ledger.beginUpload(up)
        try ledger.recordPart(uploadID: "u1", PartRecord(number: 1, size: 5, md5: "m", etag: "m"))
        try ledger.recordFailure(bucket: "b", key: "k", device: "wt-a", localPath: "/x/k", message: "boom")
        #expect(try ledger.upload(bucket: "b", key: "k") == up)
        #expect(try ledger.parts(uploadID: "u1").map(\.number) == [1])
        var status = try ledger.status()
        #expect(status.first?.inFlightUploads == 1 && status.first?.failed == 1)

        try ledger.recordVerified(object("k"), closingUpload: "u1")
        #expect(try ledger.upload(bucket: "b", key: "k") == nil)
        #expect(try ledger.parts(uploadID: "u1").isEmpty)
        #expect(try ledger.object(bucket: "b", key: "k") == object("k"))
        status = try ledger.status()
        #expect(
            status == [
                DeviceStatus(
                    device: "wt-a", verifiedObjects: 1, verifiedBytes: 100, inFlightUploads: 0,
                    inFlightBytes: 0, failed: 0, lastVerifiedAt: "2026-11-22T00:00:00Z")
            ])
    }

    @Test func readOnlyOpenWritesNothing() throws {
        let missing = tempPath()
        let empty = try Ledger(readOnlyPath: missing)
        #expect(try empty.status().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: missing))

        let path = tempPath()
        try Ledger(path: path).recordVerified(object("k"))
        let ro = try Ledger(readOnlyPath: path)
        #expect(try ro.object(bucket: "b", key: "k") != nil)
        #expect(throws: SQLiteError.self) { try ro.recordVerified(object("k2")) }
    }

    @Test func refusesANewerSchema() throws {
        let path = tempPath()
        _ = try Ledger(path: path)
        let db = try SQLiteDatabase(path: path, readOnly: false)
        try db.execute("PRAGMA user_version = 99")
        #expect(throws: SQLiteError.self) { _ = try Ledger(path: path) }
    }
}
