import Foundation
import Testing

@testable import CetiKit

@Suite struct CredentialChainTests {
    static let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    static let token = "IQoJb3JpZ2luX2VjEXAMPLETOKEN"

    /// A throwaway HOME with optional ~/.aws/credentials and ~/.aws/config.
    final class Home {
        let path: String
        var credentialsPath: String { path + "/.aws/credentials" }
        var configPath: String { path + "/.aws/config" }
        var environment: [String: String] { ["HOME": path, "PATH": "/usr/bin:/bin"] }

        init(credentials: String? = nil, config: String? = nil) throws {
            path =
                FileManager.default.temporaryDirectory
                .appendingPathComponent("ceti-credentials-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: path + "/.aws", withIntermediateDirectories: true)
            if let credentials { try credentials.write(toFile: credentialsPath, atomically: true, encoding: .utf8) }
            if let config { try config.write(toFile: configPath, atomically: true, encoding: .utf8) }
        }

        /// An executable script in HOME, for credential_process.
        func script(_ name: String, _ body: String) throws -> String {
            let file = path + "/" + name
            try ("#!/bin/sh\n" + body + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file)
            return file
        }

        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    static let workCredentials = """
        # comment
        [default]
        aws_access_key_id = AKIADEFAULT
        aws_secret_access_key = \(secret)

        [ work ]
        ; another comment
        aws_access_key_id=AKIAWORK
        aws_secret_access_key   =   \(secret)\t
        aws_session_token = \(token)
        """

    // MARK: - Order

    @Test func environmentWinsOverProfiles() throws {
        let home = try Home(credentials: Self.workCredentials)
        var env = home.environment
        env["AWS_ACCESS_KEY_ID"] = "AKIAENV"
        env["AWS_SECRET_ACCESS_KEY"] = Self.secret
        env["AWS_SESSION_TOKEN"] = Self.token
        env["AWS_PROFILE"] = "work"
        let credentials = try CredentialChain.resolve(profile: nil, environment: env)
        #expect(
            credentials
                == AWSCredentials(
                    accessKeyID: "AKIAENV", secretAccessKey: Self.secret, sessionToken: Self.token,
                    source: "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"))
    }

    /// botocore drops the environment provider when a profile is passed explicitly (--profile).
    @Test func explicitProfileBeatsEnvironment() throws {
        let home = try Home(credentials: Self.workCredentials)
        var env = home.environment
        env["AWS_ACCESS_KEY_ID"] = "AKIAENV"
        env["AWS_SECRET_ACCESS_KEY"] = Self.secret
        let credentials = try CredentialChain.resolve(profile: "work", environment: env)
        #expect(credentials.accessKeyID == "AKIAWORK")
    }

    @Test func profileFromCredentialsFile() throws {
        let home = try Home(credentials: Self.workCredentials)
        var env = home.environment
        #expect(
            try CredentialChain.resolve(profile: nil, environment: env)
                == AWSCredentials(
                    accessKeyID: "AKIADEFAULT", secretAccessKey: Self.secret,
                    source: "profile 'default' in \(home.credentialsPath)"))

        env["AWS_PROFILE"] = "work"
        #expect(
            try CredentialChain.resolve(profile: nil, environment: env)
                == AWSCredentials(
                    accessKeyID: "AKIAWORK", secretAccessKey: Self.secret, sessionToken: Self.token,
                    source: "profile 'work' in \(home.credentialsPath)"))
    }

    @Test func fileLocationsFromEnvironment() throws {
        let home = try Home()
        let credentials = home.path + "/elsewhere.ini"
        try Self.workCredentials.write(toFile: credentials, atomically: true, encoding: .utf8)
        let env = ["HOME": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": credentials]
        #expect(
            try CredentialChain.resolve(profile: "work", environment: env).source
                == "profile 'work' in \(credentials)")
    }

    @Test func profileInConfigFile() throws {
        let home = try Home(
            config: """
                [default]
                region = us-west-2

                [profile field]
                region = eu-north-1
                aws_access_key_id = AKIAFIELD
                aws_secret_access_key = \(Self.secret)
                """)
        let credentials = try CredentialChain.resolve(profile: "field", environment: home.environment)
        #expect(
            credentials
                == AWSCredentials(
                    accessKeyID: "AKIAFIELD", secretAccessKey: Self.secret,
                    source: "profile 'field' in \(home.configPath)"))
        // A bare [field] section is a credentials-file spelling; in the config file it is not the profile.
        let bare = try Home(config: "[field]\naws_access_key_id = A\naws_secret_access_key = B\n")
        #expect(throws: CredentialError.profileNotFound(profile: "field", files: [bare.credentialsPath, bare.configPath])) {
            try CredentialChain.resolve(profile: "field", environment: bare.environment)
        }
    }

    @Test func credentialsFileBeatsConfigFile() throws {
        let home = try Home(
            credentials: "[p]\naws_access_key_id = AKIACRED\naws_secret_access_key = s\n",
            config: "[profile p]\naws_access_key_id = AKIACONF\naws_secret_access_key = s\n")
        #expect(try CredentialChain.resolve(profile: "p", environment: home.environment).accessKeyID == "AKIACRED")
    }

    @Test func region() throws {
        let home = try Home(config: "[default]\nregion = us-west-2\n[profile field]\nregion = eu-north-1\n")
        var env = home.environment
        #expect(CredentialChain.region(explicit: nil, profile: nil, environment: env) == "us-west-2")
        #expect(CredentialChain.region(explicit: nil, profile: "field", environment: env) == "eu-north-1")
        #expect(CredentialChain.region(explicit: nil, profile: "missing", environment: env) == nil)
        env["AWS_PROFILE"] = "field"
        #expect(CredentialChain.region(explicit: nil, profile: nil, environment: env) == "eu-north-1")
        env["AWS_DEFAULT_REGION"] = "ap-south-1"
        #expect(CredentialChain.region(explicit: nil, profile: nil, environment: env) == "ap-south-1")
        env["AWS_REGION"] = "sa-east-1"
        #expect(CredentialChain.region(explicit: nil, profile: nil, environment: env) == "sa-east-1")
        #expect(CredentialChain.region(explicit: "ca-central-1", profile: nil, environment: env) == "ca-central-1")
        #expect(CredentialChain.region(explicit: nil, profile: nil, environment: [:]) == nil)
    }

    // MARK: - credential_process

    @Test func credentialProcessSuccess() throws {
        let home = try Home()
        let script = try home.script(
            "creds.sh",
            """
            echo "ignored on stderr" >&2
            printf '{"Version": 1, "AccessKeyId": "AKIAPROC", "SecretAccessKey": "%s", "SessionToken": "%s", "Expiration": "2030-01-01T00:00:00Z"}' "$1" "$PROC_TOKEN"
            """)
        try "[profile proc]\ncredential_process = \(script) '\(Self.secret)'\n"
            .write(toFile: home.configPath, atomically: true, encoding: .utf8)
        var env = home.environment
        env["PROC_TOKEN"] = Self.token  // the process sees the given environment
        let credentials = try CredentialChain.resolve(profile: "proc", environment: env)
        #expect(
            credentials
                == AWSCredentials(
                    accessKeyID: "AKIAPROC", secretAccessKey: Self.secret, sessionToken: Self.token,
                    source: "credential_process of profile 'proc' in \(home.configPath)"))
    }

    @Test func credentialProcessInCredentialsFile() throws {
        let home = try Home()
        let script = try home.script("creds.sh", #"echo '{"Version":1,"AccessKeyId":"AKIAPROC","SecretAccessKey":"s"}'"#)
        try "[proc]\ncredential_process = \(script)\n".write(toFile: home.credentialsPath, atomically: true, encoding: .utf8)
        let credentials = try CredentialChain.resolve(profile: "proc", environment: home.environment)
        #expect(credentials.sessionToken == nil)
        #expect(credentials.source == "credential_process of profile 'proc' in \(home.credentialsPath)")
    }

    @Test func credentialProcessFailure() throws {
        let home = try Home()
        let script = try home.script("fail.sh", "echo 'token has expired, run sso login' >&2\necho second line >&2\nexit 3")
        try "[default]\ncredential_process = \(script)\n".write(toFile: home.configPath, atomically: true, encoding: .utf8)
        let source = "credential_process of profile 'default' in \(home.configPath)"
        let expected = CredentialError.credentialProcessFailed(
            source: source, reason: "exited with status 3: token has expired, run sso login")
        #expect(throws: expected) { try CredentialChain.resolve(profile: nil, environment: home.environment) }
        #expect(expected.description.hasPrefix("\(source) failed: exited with status 3"))
    }

    @Test(arguments: [
        ("not json at all", "stdout is not a JSON object"),
        (#"{"AccessKeyId": "A", "SecretAccessKey": "S"}"#, #"no numeric "Version""#),
        (
            #"{"Version": 2, "AccessKeyId": "A", "SecretAccessKey": "\#(CredentialChainTests.secret)"}"#,
            #""Version" is 2, only 1 is supported"#
        ),
        (#"{"Version": 1, "SecretAccessKey": "\#(CredentialChainTests.secret)"}"#, #"no "AccessKeyId" string"#),
        (#"{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": ""}"#, #"no "SecretAccessKey" string"#),
    ])
    func credentialProcessBadOutput(output: String, reason: String) throws {
        let home = try Home()
        let outputFile = home.path + "/out.json"
        try output.write(toFile: outputFile, atomically: true, encoding: .utf8)
        try "[default]\ncredential_process = cat '\(outputFile)'\n"
            .write(toFile: home.configPath, atomically: true, encoding: .utf8)
        let source = "credential_process of profile 'default' in \(home.configPath)"
        let error = #expect(throws: CredentialError.self) {
            try CredentialChain.resolve(profile: nil, environment: home.environment)
        }
        #expect(error == .credentialProcessBadOutput(source: source, reason: reason))
        #expect(error?.description.contains(Self.secret) == false)
    }

    // MARK: - Errors

    @Test func missingExplicitProfile() throws {
        let home = try Home(credentials: Self.workCredentials, config: "[default]\nregion = us-east-1\n")
        let expected = CredentialError.profileNotFound(profile: "nope", files: [home.credentialsPath, home.configPath])
        #expect(throws: expected) { try CredentialChain.resolve(profile: "nope", environment: home.environment) }
        // AWS_PROFILE names a profile just as explicitly.
        var env = home.environment
        env["AWS_PROFILE"] = "nope"
        #expect(throws: expected) { try CredentialChain.resolve(profile: nil, environment: env) }
        #expect(expected.description.contains("AWS profile 'nope' not found in \(home.credentialsPath) or \(home.configPath)"))
    }

    @Test func notFound() throws {
        let home = try Home(config: "[default]\nregion = us-east-1\n")
        let expected = CredentialError.notFound(lookedAt: [
            "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (not set)",
            "profile 'default' in \(home.credentialsPath) (no such file)",
            "profile 'default' in \(home.configPath) (no credentials in [default])",
        ])
        #expect(throws: expected) { try CredentialChain.resolve(profile: nil, environment: home.environment) }
        #expect(expected.description.hasPrefix("no AWS credentials found (looked at: environment variables"))

        #expect(
            throws: CredentialError.notFound(lookedAt: [
                "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (not set)",
                "~/.aws/credentials (HOME is not set)", "~/.aws/config (HOME is not set)",
            ])
        ) { try CredentialChain.resolve(profile: nil, environment: [:]) }
    }

    @Test func incompleteCredentials() throws {
        #expect(
            throws: CredentialError.incomplete(
                source: "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", missing: "AWS_SECRET_ACCESS_KEY")
        ) {
            try CredentialChain.resolve(profile: nil, environment: ["AWS_ACCESS_KEY_ID": "AKIA"])
        }
        let home = try Home(credentials: "[default]\naws_secret_access_key = \(Self.secret)\n")
        let expected = CredentialError.incomplete(
            source: "profile 'default' in \(home.credentialsPath)",
            missing: "aws_access_key_id")
        #expect(throws: expected) { try CredentialChain.resolve(profile: nil, environment: home.environment) }
        #expect(!expected.description.contains(Self.secret))
    }

    @Test func unsupportedProfileKinds() throws {
        let home = try Home(config: "[profile sso]\nsso_session = corp\nregion = eu-west-1\n")
        #expect(throws: CredentialError.unsupported(profile: "sso", file: home.configPath, setting: "sso_session")) {
            try CredentialChain.resolve(profile: "sso", environment: home.environment)
        }
    }

    @Test func malformedFileNamesLineNotContents() throws {
        let home = try Home(credentials: "[default]\naws_access_key_id = AKIA\n\(Self.secret)\n")
        let expected = CredentialError.malformedFile(
            path: home.credentialsPath, line: 3, reason: "expected 'key = value' or a [section] header")
        #expect(throws: expected) { try CredentialChain.resolve(profile: nil, environment: home.environment) }
        #expect(!expected.description.contains(Self.secret))
    }

    // MARK: - Redaction

    @Test func descriptionsNeverShowSecrets() {
        let credentials = AWSCredentials(
            accessKeyID: "AKIAID", secretAccessKey: Self.secret, sessionToken: Self.token,
            source: "profile 'x' in /root/.aws/credentials")
        var dumped = ""
        dump(credentials, to: &dumped)
        let signer = SigV4Signer(credentials: credentials, region: "us-east-1")
        for text in [
            credentials.description, credentials.debugDescription, "\(credentials)",
            String(reflecting: credentials), dumped, "\(signer)", String(reflecting: signer),
        ] {
            #expect(!text.contains(Self.secret), "\(text)")
            #expect(!text.contains(Self.token), "\(text)")
            #expect(text.contains("AKIAID"))
        }
    }

    // MARK: - INI

    @Test func iniDialect() throws {
        let ini = try INIFile(
            parsing: """
                \u{FEFF}; leading comment
                [  spaced name  ]
                Key One = value with = sign
                colon: yes
                empty =
                s3 =
                    addressing_style = path
                    max_concurrent_requests = 4
                after = nested\r
                # trailing comment
                [spaced name]
                later = merged
                """)
        #expect(
            ini["spaced name"] == [
                "key one": "value with = sign", "colon": "yes", "empty": "",
                "s3": "addressing_style = path\nmax_concurrent_requests = 4", "after": "nested", "later": "merged",
            ])
        #expect(throws: INIFile.SyntaxError(line: 1, reason: "setting before the first [section] header")) {
            try INIFile(parsing: "key = value\n[s]\n")
        }
        #expect(throws: INIFile.SyntaxError(line: 2, reason: "section header without a closing ']'")) {
            try INIFile(parsing: "[s]\n[broken\n")
        }
    }
}
