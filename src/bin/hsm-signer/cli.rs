//! Command-line types only (clap derive); behaviour lives in the command files.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Sign and verify Azure HMAC-SHA256 requests with a key kept in an HSM.
#[derive(Debug, Parser)]
#[command(name = "hsm-signer", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    /// Config file with profiles [env: HSM_SIGNER_CONFIG]
    /// [default: $XDG_CONFIG_HOME/hsm-signer/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    /// Profile to take settings from (flags still win) [env: HSM_SIGNER_PROFILE]
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) profile: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Compute x-ms-date, x-ms-content-sha256 and Authorization for a request
    Sign(SignArgs),
    /// Check a raw HTTP request (exit 1 when it is rejected)
    Verify(VerifyArgs),
    /// Print the base64 HMAC-SHA256 of the input
    Hmac(HmacArgs),
    /// Check a base64 HMAC-SHA256 over the input (exit 1 when it does not match)
    HmacVerify(HmacVerifyArgs),
    /// Provision keys in a PKCS#11 token
    #[command(subcommand)]
    Key(KeyCommand),
    /// Check a PKCS#11 token end to end
    Doctor(DoctorArgs),
    /// Serve the Cloud-HSM style HMAC REST API backed by the token
    #[cfg(feature = "server")]
    Serve(ServeArgs),
    /// Reverse proxy that signs every request with the key
    #[cfg(feature = "server")]
    Proxy(ProxyArgs),
}

/// Where the PKCS#11 token is and how to log in.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct TokenArgs {
    /// PKCS#11 module (shared library) [env: HSM_SIGNER_MODULE]
    #[arg(long, value_name = "PATH")]
    pub(crate) module: Option<PathBuf>,
    /// Token label
    #[arg(long, value_name = "LABEL", conflicts_with = "slot")]
    pub(crate) token_label: Option<String>,
    /// Slot id (prefer --token-label: slot ids can change)
    #[arg(long, value_name = "ID")]
    pub(crate) slot: Option<u64>,
    /// Environment variable holding the user PIN [default: HSM_SIGNER_PIN]
    #[arg(long, value_name = "VAR", conflicts_with = "pin_file")]
    pub(crate) pin_env: Option<String>,
    /// File holding the user PIN
    #[arg(long, value_name = "PATH")]
    pub(crate) pin_file: Option<PathBuf>,
    /// RFC 7512 URI: pkcs11:token=..;object=..?module-path=..&pin-source=file:..
    #[arg(long, value_name = "URI")]
    pub(crate) pkcs11_uri: Option<String>,
}

/// Which key to use: a software secret or a key in a token.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct KeyArgs {
    /// Software key: environment variable holding the base64 secret
    #[arg(long, value_name = "VAR", conflicts_with = "key_file")]
    pub(crate) key_env: Option<String>,
    /// Software key: file holding the base64 secret
    #[arg(long, value_name = "PATH")]
    pub(crate) key_file: Option<PathBuf>,
    /// PKCS#11 key label
    #[arg(long, value_name = "LABEL")]
    pub(crate) key_label: Option<String>,
    /// PKCS#11 key id (hex)
    #[arg(long, value_name = "HEX")]
    pub(crate) key_id: Option<String>,
    #[command(flatten)]
    pub(crate) token: TokenArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum DialectArg {
    /// Azure Communication Services
    Acs,
    /// Azure App Configuration (needs --credential)
    Appconfig,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub(crate) enum SignFormat {
    /// One `Name: value` line per header
    #[default]
    Headers,
    /// {"headers": {...}, "string_to_sign": ...}
    Json,
    /// A curl command line
    Curl,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub(crate) enum VerifyFormat {
    /// Human-readable lines
    #[default]
    Text,
    /// {"valid": .., "error": .., "www_authenticate": ..}
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub(crate) enum ListFormat {
    /// A table
    #[default]
    Text,
    /// A JSON array
    Json,
}

/// Which HMAC dialect, and the access key id that goes with it.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct DialectArgs {
    /// Signing dialect [default: acs]
    #[arg(long, value_enum)]
    pub(crate) dialect: Option<DialectArg>,
    /// Access key id (appconfig): sent when signing; the only one accepted
    /// when verifying (any id when absent)
    #[arg(long, value_name = "ID")]
    pub(crate) credential: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    #[command(flatten)]
    pub(crate) scheme: DialectArgs,
    /// Request date instead of now, e.g. "Fri, 11 May 2018 18:48:36 GMT"
    #[arg(long, value_name = "HTTP-DATE")]
    pub(crate) date: Option<String>,
    /// Request body text
    #[arg(long, value_name = "TEXT", conflicts_with = "body_file")]
    pub(crate) body: Option<String>,
    /// Request body file, or - for standard input (streamed, any size)
    #[arg(long, value_name = "PATH|-")]
    pub(crate) body_file: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: SignFormat,
    /// Read JSON lines from standard input and sign each one
    #[arg(long, conflicts_with_all = ["body", "body_file", "date"])]
    pub(crate) batch: bool,
    /// HTTP method
    #[arg(required_unless_present = "batch")]
    pub(crate) method: Option<String>,
    /// Absolute URL
    #[arg(required_unless_present = "batch")]
    pub(crate) url: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    #[command(flatten)]
    pub(crate) scheme: DialectArgs,
    /// Current time instead of the clock
    #[arg(long, value_name = "HTTP-DATE")]
    pub(crate) now: Option<String>,
    /// Accepted clock skew in seconds [default: 900]
    #[arg(long, value_name = "SECONDS")]
    pub(crate) max_skew: Option<u64>,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: VerifyFormat,
    /// Raw HTTP/1.1 request file, or - for standard input
    #[arg(long, value_name = "PATH|-")]
    pub(crate) request: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct HmacArgs {
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    /// Input file, or - for standard input [default: -]
    #[arg(long, value_name = "PATH|-")]
    pub(crate) input: Option<PathBuf>,
    /// Read JSON lines {"payload_b64": ..} from standard input
    #[arg(long, conflicts_with = "input")]
    pub(crate) batch: bool,
}

#[derive(Debug, Args)]
pub(crate) struct HmacVerifyArgs {
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    /// Expected tag, base64
    #[arg(long, value_name = "B64")]
    pub(crate) signature: String,
    /// Input file, or - for standard input [default: -]
    #[arg(long, value_name = "PATH|-")]
    pub(crate) input: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Import a base64 secret (from env, file or stdin) as a sensitive, non-extractable key
    Import(KeyImportArgs),
    /// Generate a key inside the token
    Generate(KeyGenerateArgs),
    /// List the secret keys in the token
    List(KeyListArgs),
    /// Delete a key (only keys made with --allow-delete)
    Delete(KeyDeleteArgs),
}

/// Where a new key goes and what it is called.
#[derive(Debug, Args)]
pub(crate) struct NewKeyArgs {
    #[command(flatten)]
    pub(crate) token: TokenArgs,
    /// Label of the new key
    #[arg(long)]
    pub(crate) label: String,
    /// Id of the new key, hex [default: random 8 bytes]
    #[arg(long, value_name = "HEX")]
    pub(crate) id: Option<String>,
    /// Make the key destroyable (key delete works on it)
    #[arg(long)]
    pub(crate) allow_delete: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KeyImportArgs {
    #[command(flatten)]
    pub(crate) new: NewKeyArgs,
    /// Environment variable holding the base64 secret
    #[arg(long, value_name = "VAR", conflicts_with = "from_file")]
    pub(crate) from_env: Option<String>,
    /// File holding the base64 secret (default: standard input)
    #[arg(long, value_name = "PATH")]
    pub(crate) from_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct KeyGenerateArgs {
    #[command(flatten)]
    pub(crate) new: NewKeyArgs,
    /// Key length in bytes
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub(crate) bytes: usize,
}

#[derive(Debug, Args)]
pub(crate) struct KeyListArgs {
    #[command(flatten)]
    pub(crate) token: TokenArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: ListFormat,
}

#[derive(Debug, Args)]
pub(crate) struct KeyDeleteArgs {
    #[command(flatten)]
    pub(crate) token: TokenArgs,
    /// Label of the key to delete
    #[arg(long)]
    pub(crate) label: String,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) token: TokenArgs,
    /// Key to check (label)
    #[arg(long, value_name = "LABEL")]
    pub(crate) key_label: Option<String>,
    /// Key to check (id, hex)
    #[arg(long, value_name = "HEX")]
    pub(crate) key_id: Option<String>,
}

#[cfg(feature = "server")]
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) token: TokenArgs,
    /// Address to listen on, e.g. 127.0.0.1:8443
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: std::net::SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM)
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// Private key for --tls-cert (PEM)
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Clients authenticate with the App Configuration HMAC scheme; the
    /// secret of client ID is the token key labelled PREFIX + ID
    #[arg(long, value_name = "PREFIX", default_value = "client:")]
    pub(crate) client_key_prefix: String,
    /// Also accept `Authorization: Bearer <token>` with the token in this file
    #[arg(long, value_name = "PATH")]
    pub(crate) bearer_token_file: Option<PathBuf>,
    /// No authentication at all (only on a loopback address)
    #[arg(long)]
    pub(crate) insecure_no_auth: bool,
    /// Largest request body in bytes (413 above)
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub(crate) max_payload: usize,
    /// PKCS#11 worker threads: at most this many operations at a time, and
    /// at most this many sessions per key (opened as needed)
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub(crate) sessions: usize,
    /// Key used by /healthz for its round trip (generated if absent)
    #[arg(long, value_name = "LABEL", default_value = "hsm-signer-health")]
    pub(crate) health_key: String,
}

#[cfg(feature = "server")]
#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    #[command(flatten)]
    pub(crate) scheme: DialectArgs,
    /// Address to listen on, e.g. 127.0.0.1:8080
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: std::net::SocketAddr,
    /// Upstream origin, e.g. https://contoso.communication.azure.com
    #[arg(long, value_name = "URL")]
    pub(crate) upstream: String,
    /// Only forward paths starting with this prefix (repeatable; default: all)
    #[arg(long, value_name = "PREFIX")]
    pub(crate) allow_path_prefix: Vec<String>,
    /// Allow listening on a non-loopback address
    #[arg(long)]
    pub(crate) allow_non_loopback: bool,
    /// Bodies larger than this many bytes spill to a temporary file
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    pub(crate) spill_threshold: usize,
}
