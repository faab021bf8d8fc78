/// ceti's library: every behaviour of the `ceti` command lives here.
public enum Ceti {
    public static let version = "0.1.0"
}
