//! Recovery from session loss against SoftHSM. Its own test binary (its
//! own process), because it finalizes the module under the other tests' feet.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Mutex;

use common::hsm::{open_label, spec, unique_label};
use cryptoki::session::UserType;
use hsm_signer::backend::pkcs11::module::{context, find_token};
use hsm_signer::backend::pkcs11::provision::Token;
use hsm_signer::backend::pkcs11::Pkcs11Backend;
use hsm_signer::{KeyBackend, SecretBytes, SoftwareKey};

/// The tests here disturb the whole module: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn setup() -> Option<(
    hsm_signer::backend::pkcs11::TokenSpec,
    Pkcs11Backend,
    SoftwareKey,
)> {
    let spec = spec()?;
    let label = unique_label("loss");
    let key = vec![0x33; 48];
    Token::open(&spec)
        .unwrap()
        .import(&label, None, &SecretBytes::new(key.clone()), true)
        .unwrap();
    let backend = open_label(&spec, &label);
    Some((spec, backend, SoftwareKey::new(SecretBytes::new(key))))
}

#[test]
fn recovers_after_the_module_is_finalized_and_reinitialized() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((spec, hsm, reference)) = setup() else {
        return;
    };
    let expected = reference.sign(b"before").unwrap();
    assert_eq!(hsm.sign(b"before").unwrap(), expected);

    // C_Finalize closes every session of the process and ends the login;
    // C_Initialize brings the module back with nothing open.
    let ctx = context(&spec.module).unwrap();
    ctx.clone().finalize().unwrap();
    ctx.initialize(cryptoki::context::CInitializeArgs::new(
        cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
    ))
    .unwrap();

    // The caller sees no error: the pool re-opens, logs in, re-finds the key.
    assert_eq!(
        hsm.sign(b"after").unwrap(),
        reference.sign(b"after").unwrap()
    );
    hsm.verify(b"after", &reference.sign(b"after").unwrap())
        .unwrap();
    assert_eq!(hsm.recoveries(), 1);
}

#[test]
fn recovers_after_a_logout_from_another_session() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((spec, hsm, reference)) = setup() else {
        return;
    };
    assert_eq!(hsm.sign(b"one").unwrap(), reference.sign(b"one").unwrap());
    let before = hsm.recoveries();

    // Login state belongs to the application: a logout anywhere ends it for
    // every session, and SoftHSM invalidates the private key handles.
    let ctx = context(&spec.module).unwrap();
    let slot = find_token(&ctx, &spec.token).unwrap().slot;
    let other = ctx.open_ro_session(slot).unwrap();
    other.logout().unwrap();

    for i in 0..20 {
        let msg = format!("after logout {i}");
        assert_eq!(
            hsm.sign(msg.as_bytes()).unwrap(),
            reference.sign(msg.as_bytes()).unwrap()
        );
    }
    assert_eq!(hsm.recoveries(), before + 1, "one recovery, then healthy");
    let _ = other.login(UserType::User, spec.pin.as_ref());
}
