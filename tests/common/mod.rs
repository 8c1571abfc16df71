//! Shared test helpers: the backends every vector runs on.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use hsm_signer::{KeyBackend, SecretBytes, SoftwareKey};

/// A backend under test with a name for messages.
pub struct Named {
    pub name: &'static str,
    pub backend: Arc<dyn KeyBackend>,
}

/// Every backend that can hold `key`: the software key always, and a key
/// imported into SoftHSM when a token is configured (mandatory under
/// `REQUIRE_HSM=1`).
pub fn backends(key: &[u8]) -> Vec<Named> {
    #[cfg_attr(not(feature = "pkcs11"), allow(unused_mut))]
    let mut all = vec![Named {
        name: "software",
        backend: Arc::new(SoftwareKey::new(SecretBytes::new(key.to_vec()))),
    }];
    #[cfg(feature = "pkcs11")]
    if let Some(hsm) = hsm::import_for_test(key) {
        all.push(Named {
            name: "pkcs11",
            backend: hsm,
        });
    }
    all
}

#[cfg(feature = "pkcs11")]
pub mod hsm;
