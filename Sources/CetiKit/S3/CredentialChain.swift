import Foundation

/// Why no credentials could be had. Messages are one line, name the file, profile or variable involved
/// and what to do; they never contain a secret key, session token or credential_process output.
public enum CredentialError: Error, CustomStringConvertible, Equatable {
    /// Nothing anywhere; `lookedAt` lists each place and why it gave nothing.
    case notFound(lookedAt: [String])
    /// A profile named by --profile or AWS_PROFILE exists in none of the files.
    case profileNotFound(profile: String, files: [String])
    /// One half of a key pair (`missing` names the other half's variable or setting).
    case incomplete(source: String, missing: String)
    /// The profile relies on a mechanism ceti does not implement (role_arn, sso_session, ...).
    case unsupported(profile: String, file: String, setting: String)
    case unreadableFile(path: String, reason: String)
    case malformedFile(path: String, line: Int, reason: String)
    case credentialProcessFailed(source: String, reason: String)
    case credentialProcessBadOutput(source: String, reason: String)

    public var description: String {
        switch self {
        case .notFound(let lookedAt):
            return "no AWS credentials found (looked at: \(lookedAt.joined(separator: "; "))); "
                + "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a profile "
                + "(aws configure) and select it with --profile or AWS_PROFILE"
        case .profileNotFound(let profile, let files):
            let places = files.isEmpty ? "any AWS configuration file" : files.joined(separator: " or ")
            return "AWS profile '\(profile)' not found in \(places); check the name given with --profile "
                + "or AWS_PROFILE, or create it with 'aws configure --profile \(profile)'"
        case .incomplete(let source, let missing):
            return "incomplete AWS credentials in \(source): \(missing) is missing; set it, "
                + "or remove the other half so another source is used"
        case .unsupported(let profile, let file, let setting):
            return "profile '\(profile)' in \(file) uses \(setting), which ceti does not support; add "
                + "'credential_process = aws configure export-credentials --profile \(profile) --format process' "
                + "to a profile, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN"
        case .unreadableFile(let path, let reason):
            return "cannot read \(path): \(reason); check that the file is readable by this user"
        case .malformedFile(let path, let line, let reason):
            return "\(path) line \(line): \(reason); fix the file (comments start with '#' or ';')"
        case .credentialProcessFailed(let source, let reason):
            return "\(source) failed: \(reason); run the command by hand to see what is wrong"
        case .credentialProcessBadOutput(let source, let reason):
            return "\(source) printed unusable output: \(reason); it must print JSON like "
                + #"{"Version": 1, "AccessKeyId": "...", "SecretAccessKey": "...", "SessionToken": "..."}"#
        }
    }
}

/// Finds credentials and region the way the AWS CLI and SDKs do, minus the mechanisms that need network
/// calls (assume-role, SSO, IMDS): those can be bridged with credential_process.
public struct CredentialChain {
    static let environmentSource = "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"

    /// AWS order: the environment variables AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
    /// then the profile (`profile`, else AWS_PROFILE, else "default"): static keys in the shared credentials
    /// file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, section [name]), its `credential_process`
    /// (either file; run with /bin/sh -c), static keys in the config file (AWS_CONFIG_FILE or ~/.aws/config,
    /// section [profile name], or [default]).
    ///
    /// As in botocore, an explicit `profile` (--profile) skips the environment variables, while AWS_PROFILE
    /// does not. A profile named by either that exists nowhere is an error rather than a fall-through.
    /// Throws `CredentialError`.
    public static func resolve(profile: String?, environment: [String: String]) throws -> AWSCredentials {
        var lookedAt: [String] = []
        let explicitProfile = nonEmpty(profile)
        if explicitProfile == nil {
            if let credentials = try fromEnvironment(environment) { return credentials }
            lookedAt.append(environmentSource + " (not set)")
        }

        let namedProfile = explicitProfile ?? nonEmpty(environment["AWS_PROFILE"])
        let name = namedProfile ?? "default"
        let files = SharedFiles(environment: environment)
        let credentialsFile = try files.credentialsPath.map { try (path: $0, ini: load($0)) }
        let configFile = try files.configPath.map { try (path: $0, ini: load($0)) }
        let credentialsSection = credentialsFile?.ini?[name]
        let configSection = configFile?.ini.flatMap { profileSection(name, in: $0) }

        // botocore tries these before any keys of the same profile, so using the keys instead would
        // silently act as a different identity.
        for (section, path) in [(credentialsSection, credentialsFile?.path), (configSection, configFile?.path)] {
            guard let section, let path else { continue }
            for setting in ["role_arn", "web_identity_token_file", "sso_session", "sso_start_url"]
            where section[setting] != nil {
                throw CredentialError.unsupported(profile: name, file: path, setting: setting)
            }
        }
        if let section = credentialsSection, let path = credentialsFile?.path,
            let credentials = try staticKeys(section, source: "profile '\(name)' in \(path)")
        {
            return credentials
        }
        // The credentials file overrides the config file setting by setting, as botocore merges them.
        if let path = credentialsFile?.path, let command = nonEmpty(credentialsSection?["credential_process"]) {
            return try runCredentialProcess(
                command, source: "credential_process of profile '\(name)' in \(path)",
                environment: environment)
        }
        if let path = configFile?.path, let command = nonEmpty(configSection?["credential_process"]) {
            return try runCredentialProcess(
                command, source: "credential_process of profile '\(name)' in \(path)",
                environment: environment)
        }
        if let section = configSection, let path = configFile?.path,
            let credentials = try staticKeys(section, source: "profile '\(name)' in \(path)")
        {
            return credentials
        }

        if let namedProfile, credentialsSection == nil, configSection == nil {
            throw CredentialError.profileNotFound(
                profile: namedProfile, files: [credentialsFile?.path, configFile?.path].compactMap { $0 })
        }

        lookedAt.append(
            describe(
                name, file: credentialsFile, sectionFound: credentialsSection != nil,
                section: "[\(name)]", fallback: "~/.aws/credentials"))
        lookedAt.append(
            describe(
                name, file: configFile, sectionFound: configSection != nil,
                section: name == "default" ? "[default]" : "[profile \(name)]",
                fallback: "~/.aws/config"))
        throw CredentialError.notFound(lookedAt: lookedAt)
    }

    /// Region: `explicit` (--region), AWS_REGION, AWS_DEFAULT_REGION, `region` of the profile (`profile`,
    /// else AWS_PROFILE, else "default") in the config file, else nil. An unreadable config file counts as
    /// no region here; `resolve` reports it.
    public static func region(explicit: String?, profile: String?, environment: [String: String]) -> String? {
        if let region = nonEmpty(explicit) ?? nonEmpty(environment["AWS_REGION"])
            ?? nonEmpty(environment["AWS_DEFAULT_REGION"])
        {
            return region
        }
        let name = nonEmpty(profile) ?? nonEmpty(environment["AWS_PROFILE"]) ?? "default"
        guard let path = SharedFiles(environment: environment).configPath,
            let ini = try? load(path), let section = profileSection(name, in: ini)
        else { return nil }
        return nonEmpty(section["region"])
    }

    // MARK: - Sources

    private static func fromEnvironment(_ environment: [String: String]) throws(CredentialError) -> AWSCredentials? {
        let key = nonEmpty(environment["AWS_ACCESS_KEY_ID"])
        let secret = nonEmpty(environment["AWS_SECRET_ACCESS_KEY"])
        switch (key, secret) {
        case (nil, nil):
            return nil
        case (nil, _):
            throw .incomplete(source: environmentSource, missing: "AWS_ACCESS_KEY_ID")
        case (_, nil):
            throw .incomplete(source: environmentSource, missing: "AWS_SECRET_ACCESS_KEY")
        case let (key?, secret?):
            // AWS_SECURITY_TOKEN is the older name, still honoured by botocore.
            let token = nonEmpty(environment["AWS_SESSION_TOKEN"]) ?? nonEmpty(environment["AWS_SECURITY_TOKEN"])
            return AWSCredentials(
                accessKeyID: key, secretAccessKey: secret, sessionToken: token,
                source: environmentSource)
        }
    }

    private static func staticKeys(_ section: [String: String], source: String) throws(CredentialError)
        -> AWSCredentials?
    {
        let key = nonEmpty(section["aws_access_key_id"])
        let secret = nonEmpty(section["aws_secret_access_key"])
        switch (key, secret) {
        case (nil, nil):
            return nil
        case (nil, _):
            throw .incomplete(source: source, missing: "aws_access_key_id")
        case (_, nil):
            throw .incomplete(source: source, missing: "aws_secret_access_key")
        case let (key?, secret?):
            return AWSCredentials(
                accessKeyID: key, secretAccessKey: secret,
                sessionToken: nonEmpty(section["aws_session_token"]), source: source)
        }
    }

    /// Runs `command` with /bin/sh -c and reads the credential_process JSON from its stdout.
    /// `Expiration` is not read: ceti resolves credentials once per run.
    static func runCredentialProcess(_ command: String, source: String, environment: [String: String])
        throws(CredentialError) -> AWSCredentials
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        do {
            try process.run()
        } catch {
            throw .credentialProcessFailed(source: source, reason: "could not start /bin/sh: \(error.localizedDescription)")
        }
        // Drain stderr concurrently so a chatty process cannot block on a full pipe while we read stdout.
        // A dedicated thread: a blocked read on Dispatch's shared pool can wait a second for a worker.
        let errorOutput = OutputBox()
        let errorHandle = stderr.fileHandleForReading
        let drained = DispatchSemaphore(value: 0)
        Thread {
            errorOutput.data = errorHandle.readDataToEndOfFile()
            drained.signal()
        }.start()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        process.waitUntilExit()

        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let how =
                process.terminationReason == .exit
                ? "exited with status \(process.terminationStatus)"
                : "was killed by signal \(process.terminationStatus)"
            let message = firstLine(of: errorOutput.data)
            throw .credentialProcessFailed(source: source, reason: message.isEmpty ? how : "\(how): \(message)")
        }

        guard let object = try? JSONSerialization.jsonObject(with: output), let json = object as? [String: Any] else {
            throw .credentialProcessBadOutput(source: source, reason: "stdout is not a JSON object")
        }
        guard let version = json["Version"] as? Int else {
            throw .credentialProcessBadOutput(source: source, reason: "no numeric \"Version\"")
        }
        guard version == 1 else {
            throw .credentialProcessBadOutput(source: source, reason: "\"Version\" is \(version), only 1 is supported")
        }
        guard let key = nonEmpty(json["AccessKeyId"] as? String) else {
            throw .credentialProcessBadOutput(source: source, reason: "no \"AccessKeyId\" string")
        }
        guard let secret = nonEmpty(json["SecretAccessKey"] as? String) else {
            throw .credentialProcessBadOutput(source: source, reason: "no \"SecretAccessKey\" string")
        }
        return AWSCredentials(
            accessKeyID: key, secretAccessKey: secret,
            sessionToken: nonEmpty(json["SessionToken"] as? String), source: source)
    }

    /// Written by the drain thread and read after its semaphore is signalled, which orders the accesses.
    private final class OutputBox: @unchecked Sendable {
        var data = Data()
    }

    // MARK: - Files

    /// Where the shared files are; nil when neither the override variable nor HOME is set.
    private struct SharedFiles {
        var credentialsPath: String?
        var configPath: String?

        init(environment: [String: String]) {
            let home = SharedFiles.nonEmptyHome(environment)
            func path(_ variable: String, _ defaultName: String) -> String? {
                if let override = CredentialChain.nonEmpty(environment[variable]) {
                    // botocore expands a leading ~ in these variables.
                    if override == "~" { return home }
                    if override.hasPrefix("~/"), let home { return home + override.dropFirst() }
                    return override
                }
                return home.map { $0 + "/.aws/" + defaultName }
            }
            credentialsPath = path("AWS_SHARED_CREDENTIALS_FILE", "credentials")
            configPath = path("AWS_CONFIG_FILE", "config")
        }

        static func nonEmptyHome(_ environment: [String: String]) -> String? {
            guard let home = CredentialChain.nonEmpty(environment["HOME"]) else { return nil }
            return home.count > 1 && home.hasSuffix("/") ? String(home.dropLast()) : home
        }
    }

    /// The parsed file, or nil when it does not exist.
    private static func load(_ path: String) throws(CredentialError) -> INIFile? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return nil }
        guard !isDirectory.boolValue else { throw .unreadableFile(path: path, reason: "it is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadableFile(path: path, reason: "permission denied")
        }
        do {
            return try INIFile(parsing: String(decoding: data, as: UTF8.self))
        } catch {
            throw .malformedFile(path: path, line: error.line, reason: error.reason)
        }
    }

    /// `[profile name]` in the config file; for "default" also plain `[default]`.
    private static func profileSection(_ name: String, in ini: INIFile) -> [String: String]? {
        for (section, values) in ini.sections where section.hasPrefix("profile") {
            let rest = section.dropFirst("profile".count)
            if rest.first?.isWhitespace == true, rest.trimmingCharacters(in: .whitespaces) == name {
                return values
            }
        }
        return name == "default" ? ini["default"] : nil
    }

    private static func describe(
        _ name: String, file: (path: String, ini: INIFile?)?, sectionFound: Bool,
        section: String, fallback: String
    ) -> String {
        guard let file else { return "\(fallback) (HOME is not set)" }
        let why = file.ini == nil ? "no such file" : sectionFound ? "no credentials in \(section)" : "no \(section) section"
        return "profile '\(name)' in \(file.path) (\(why))"
    }

    private static func firstLine(of data: Data) -> String {
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        return line.count > 200 ? String(line.prefix(200)) + "…" : line
    }

    static func nonEmpty(_ value: String?) -> String? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        return value
    }
}
