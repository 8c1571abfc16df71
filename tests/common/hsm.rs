//! SoftHSM access for tests (filled in with the PKCS#11 backend).

use std::sync::Arc;

use hsm_signer::KeyBackend;

/// Imports `key` into the test token, or `None` when no token is configured.
pub fn import_for_test(_key: &[u8]) -> Option<Arc<dyn KeyBackend>> {
    None
}
