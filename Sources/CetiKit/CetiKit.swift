/// ceti's library: every behaviour of the `ceti` command lives here.
public enum Ceti {
    public static let version = "0.1.0"
}

extension Ceti {
    /// ceti's exit status for an error that ended a command: 2 for what the operator must fix in
    /// the call or configuration (including refused credentials, a missing bucket and a ledger
    /// path that cannot be opened at all), else 1 — among them every I/O and database failure
    /// (a damaged ledger, a full disk, a ledger locked by another ceti).
    public static func exitStatus(for error: Error) -> Int32 {
        switch error {
        case is UsageError, is CredentialError, is ConfigFile.ConfigError, is KeyTemplate.TemplateError, is WatchConfig.Invalid:
            return 2
        case let e as SQLiteError:
            if case .open = e { return 2 }
            return 1
        case let e as S3Error where e.isFatal:
            return 2
        default:
            return 1
        }
    }
}
