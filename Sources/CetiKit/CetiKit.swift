/// ceti's library: every behaviour of the `ceti` command lives here.
public enum Ceti {
    public static let version = "0.1.0"
}

extension Ceti {
    /// ceti's exit status for an error that ended a command: 2 for what the operator must fix in
    /// the call or configuration (including refused credentials and a missing bucket), else 1.
    public static func exitStatus(for error: Error) -> Int32 {
        switch error {
        case is UsageError, is CredentialError, is ConfigFile.ConfigError, is KeyTemplate.TemplateError, is SQLiteError:
            return 2
        case let e as S3Error where e.isFatal:
            return 2
        default:
            return 1
        }
    }
}
