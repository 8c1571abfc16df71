//! The SoftHSM token the test script creates (see scripts/test.sh).
//!
//! `REQUIRE_HSM=1` turns "no token configured" into a failure.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hsm_signer::backend::pkcs11::provision::Token;
use hsm_signer::backend::pkcs11::{
    KeySelector, Pkcs11Backend, PoolOptions, TokenSelector, TokenSpec,
};
use hsm_signer::{KeyBackend, SecretBytes};
use secrecy::SecretString;

/// The configured test token, or `None` (a panic under `REQUIRE_HSM=1`).
pub fn spec() -> Option<TokenSpec> {
    let vars = (
        std::env::var("HSM_SIGNER_MODULE"),
        std::env::var("HSM_SIGNER_TOKEN_LABEL"),
        std::env::var("HSM_SIGNER_PIN"),
        std::env::var("SOFTHSM2_CONF"),
    );
    match vars {
        (Ok(module), Ok(label), Ok(pin), Ok(_)) => Some(TokenSpec {
            module: PathBuf::from(module),
            token: TokenSelector::Label(label),
            pin: Some(SecretString::from(pin)),
        }),
        _ => {
            assert!(
                std::env::var("REQUIRE_HSM").as_deref() != Ok("1"),
                "REQUIRE_HSM=1 but no SoftHSM token is configured \
                 (run through scripts/test.sh, or eval \"$(scripts/softhsm-init.sh DIR)\")"
            );
            eprintln!("note: no SoftHSM token configured; PKCS#11 part skipped");
            None
        }
    }
}

/// A label no other test uses.
pub fn unique_label(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    )
}

/// Imports `key` into the test token and opens it as a backend.
///
/// SoftHSM refuses HMAC keys shorter than 32 bytes. A key shorter than the
/// 64-byte SHA-256 block is zero-padded by HMAC itself (RFC 2104, step 1),
/// so importing it zero-padded to 32 bytes gives the same tags: that is how
/// the short RFC 4231 keys run in the token too.
pub fn import_for_test(key: &[u8]) -> Option<Arc<dyn KeyBackend>> {
    let spec = spec()?;
    let mut padded = key.to_vec();
    if padded.len() < 32 {
        padded.resize(32, 0);
    }
    let label = unique_label("vec");
    let token = Token::open(&spec).expect("open test token");
    token
        .import(&label, None, &SecretBytes::new(padded), true)
        .expect("import test key");
    Some(Arc::new(open_label(&spec, &label)))
}

/// Opens the key labelled `label` in the test token with default pool options.
pub fn open_label(spec: &TokenSpec, label: &str) -> Pkcs11Backend {
    Pkcs11Backend::open(
        spec,
        &KeySelector {
            label: Some(label.to_owned()),
            id: None,
        },
        PoolOptions::default(),
    )
    .expect("open the test key")
}
