//! The PKCS#11 backend against a real SoftHSM2 token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::sync::Arc;

use common::hsm::{spec, unique_label};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;
use hsm_signer::backend::pkcs11::module::{context, find_token};
use hsm_signer::backend::pkcs11::provision::{key_template, token_write_lock, Token};
use hsm_signer::backend::pkcs11::{
    hex, Error, KeySelector, Pkcs11Backend, PoolOptions, TokenSelector, TokenSpec,
};
use hsm_signer::{KeyBackend, SecretBytes, SoftwareKey, Tag, VerifyError};
use secrecy::ExposeSecret;

fn by_label(label: &str) -> KeySelector {
    KeySelector {
        label: Some(label.to_owned()),
        id: None,
    }
}

fn open(spec: &TokenSpec, label: &str) -> Result<Pkcs11Backend, Error> {
    Pkcs11Backend::open(spec, &by_label(label), PoolOptions::default())
}

fn software(key: &[u8]) -> SoftwareKey {
    SoftwareKey::new(SecretBytes::new(key.to_vec()))
}

/// `pkcs11-tool` logged in to the test token, with `args` after.
fn pkcs11_tool(spec: &TokenSpec, token: &str, args: &[&str]) -> std::process::Output {
    Command::new("pkcs11-tool")
        .arg("--module")
        .arg(&spec.module)
        .args([
            "--login",
            "--pin",
            spec.pin.as_ref().unwrap().expose_secret(),
        ])
        .args(["--token-label", token])
        .args(args)
        .output()
        .expect("pkcs11-tool (opensc) is installed by scripts/test.sh")
}

/// Creates a key with a raw template, bypassing the product's checks.
fn create_raw(spec: &TokenSpec, template: &[Attribute]) {
    let ctx = context(&spec.module).unwrap();
    let slot = find_token(&ctx, &spec.token).unwrap().slot;
    let session = ctx.open_rw_session(slot).unwrap();
    let _ = session.login(UserType::User, spec.pin.as_ref());
    let _write = token_write_lock();
    session.create_object(template).unwrap();
}

#[test]
fn imported_key_signs_like_the_software_key() {
    let Some(spec) = spec() else { return };
    let token = Token::open(&spec).unwrap();
    for len in [32usize, 64, 128] {
        let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let label = unique_label(&format!("len{len}"));
        let d = token
            .import(&label, None, &SecretBytes::new(key.clone()), false)
            .unwrap();
        assert_eq!(d.length, Some(len));
        let hsm = open(&spec, &label).unwrap();
        assert_eq!(hsm.info().length, Some(len));
        for msg in [&b""[..], b"abc", &[0xffu8; 1000][..]] {
            let tag = hsm.sign(msg).unwrap();
            assert_eq!(tag, software(&key).sign(msg).unwrap(), "{len}-byte key");
            hsm.verify(msg, &tag).unwrap();
            let mut bad = *tag.as_bytes();
            bad[5] ^= 4;
            assert!(matches!(
                hsm.verify(msg, &Tag::new(bad)),
                Err(VerifyError::Mismatch)
            ));
        }
    }
}

#[test]
fn one_byte_key_is_refused_at_import_and_at_open() {
    let Some(spec) = spec() else { return };
    let token = Token::open(&spec).unwrap();
    let label = unique_label("short");
    let err = token
        .import(&label, None, &SecretBytes::new(vec![7]), false)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyLength {
                requested: 1,
                min: 32,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        token.list().unwrap().iter().all(|k| k.label != label),
        "nothing half-created"
    );

    // A 1-byte key put there by another tool is caught when opened.
    let mut t = key_template(&label, b"\x01", true);
    t.push(Attribute::Value(vec![7]));
    create_raw(&spec, &t);
    let err = open(&spec, &label).unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyTooShort {
                length: 1,
                min: 32,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("at least 32 bytes"), "{err}");
}

#[test]
fn key_value_cannot_be_read_back() {
    let Some(spec) = spec() else { return };
    let token = Token::open(&spec).unwrap();
    let label = unique_label("sealed");
    let id = b"\x5e\xa1\xed\x01".to_vec();
    let d = token
        .import(&label, Some(&id), &SecretBytes::new(vec![0x42; 64]), false)
        .unwrap();
    assert!(d.sensitive && !d.extractable && !d.modifiable && !d.destroyable);
    assert!(d.sign && d.verify);
    assert_eq!(d.key_type, "CKK_GENERIC_SECRET");

    // cryptoki: CKA_VALUE is withheld (omitted rather than returned).
    let handle = token.find(&by_label(&label)).unwrap();
    let attrs = token
        .session()
        .get_attributes(handle, &[AttributeType::Value, AttributeType::Sensitive])
        .unwrap();
    assert!(
        !attrs.iter().any(|a| matches!(a, Attribute::Value(_))),
        "value leaked"
    );
    assert!(attrs.contains(&Attribute::Sensitive(true)));
    // Nor can it be changed, nor destroyed.
    assert!(token
        .session()
        .update_attributes(handle, &[Attribute::Label(b"renamed".to_vec())])
        .is_err());
    assert!(matches!(
        token.delete(&label),
        Err(Error::NotDestroyable(_))
    ));
    assert!(token.session().destroy_object(handle).is_err());

    // An independent client: pkcs11-tool cannot read the value either.
    let out = pkcs11_tool(
        &spec,
        token.label(),
        &["--read-object", "--type", "secrkey", "--id", &hex(&id)],
    );
    assert!(!out.status.success(), "pkcs11-tool read the key value");
    assert!(
        !out.stdout.windows(4).any(|w| w == [0x42; 4]),
        "key bytes in output"
    );
}

#[test]
fn pkcs11_tool_computes_the_same_hmac() {
    let Some(spec) = spec() else { return };
    let token = Token::open(&spec).unwrap();
    let label = unique_label("xcheck");
    let id = format!("{:08x}", std::process::id()).into_bytes();
    let key: Vec<u8> = (0u8..64).collect();
    token
        .import(&label, Some(&id), &SecretBytes::new(key.clone()), true)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::write(&input, b"GET\n/kv\nFri, 11 May 2018 18:48:36 GMT;h;x").unwrap();
    let out = pkcs11_tool(
        &spec,
        token.label(),
        &[
            "--sign",
            "-m",
            "SHA256-HMAC",
            "--id",
            &hex(&id),
            "--input-file",
            input.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = open(&spec, &label)
        .unwrap()
        .sign(&std::fs::read(&input).unwrap())
        .unwrap();
    assert_eq!(
        out.stdout,
        ours.as_bytes(),
        "pkcs11-tool and hsm-signer disagree"
    );
    assert_eq!(
        ours,
        software(&key)
            .sign(&std::fs::read(&input).unwrap())
            .unwrap()
    );
}

#[test]
fn generated_key_is_hardened_and_works() {
    let Some(spec) = spec() else { return };
    let token = Token::open(&spec).unwrap();
    let label = unique_label("gen");
    let d = token.generate(&label, None, 32, true).unwrap();
    assert_eq!(d.length, Some(32));
    assert!(d.sensitive && !d.extractable && !d.modifiable && d.destroyable);
    assert!(matches!(
        token.generate(&label, None, 32, true),
        Err(Error::LabelExists(_))
    ));
    assert!(matches!(
        token.generate("x", None, 8, true),
        Err(Error::KeyLength { .. })
    ));
    let hsm = open(&spec, &label).unwrap();
    let tag = hsm.sign(b"payload").unwrap();
    hsm.verify(b"payload", &tag).unwrap();
    drop(hsm);
    token.delete(&label).unwrap();
    assert!(matches!(
        open(&spec, &label),
        Err(Error::KeyNotFound { .. })
    ));
}

#[test]
fn clear_errors_for_what_users_get_wrong() {
    let Some(spec) = spec() else { return };
    let token = Token::open(&spec).unwrap();
    let label = unique_label("errs");
    token
        .import(&label, None, &SecretBytes::new(vec![1; 32]), true)
        .unwrap();

    // A wrong PIN is tested in a fresh process (tests/cli.rs): PKCS#11 login
    // belongs to the process, so once another test logged in, C_Login says
    // CKR_USER_ALREADY_LOGGED_IN whatever the PIN.

    let no_pin = TokenSpec {
        pin: None,
        ..spec.clone()
    };
    assert!(matches!(
        open(&no_pin, &label),
        Err(Error::PinMissing { .. })
    ));

    let missing_token = TokenSpec {
        token: TokenSelector::Label("no-such-token".into()),
        ..spec.clone()
    };
    let err = open(&missing_token, &label).unwrap_err();
    assert!(matches!(err, Error::TokenNotFound { .. }), "{err}");
    assert!(
        err.to_string().contains(token.label()),
        "lists present tokens: {err}"
    );

    let missing_module = TokenSpec {
        module: "/nonexistent/libpkcs11.so".into(),
        ..spec.clone()
    };
    assert!(matches!(
        open(&missing_module, &label),
        Err(Error::ModuleMissing(_))
    ));
    let not_a_module = TokenSpec {
        module: "/bin/sh".into(),
        ..spec.clone()
    };
    assert!(matches!(
        open(&not_a_module, &label),
        Err(Error::NotPkcs11Library { .. })
    ));

    let err = open(&spec, "no-such-key").unwrap_err();
    assert!(matches!(err, Error::KeyNotFound { .. }));
    assert!(err.to_string().starts_with("key not found"), "{err}");

    // Two keys with one label (made by another tool): ambiguous.
    let dup = unique_label("dup");
    for id in [b"\x01", b"\x02"] {
        let mut t = key_template(&dup, id, true);
        t.push(Attribute::Value(vec![3; 32]));
        create_raw(&spec, &t);
    }
    let err = open(&spec, &dup).unwrap_err();
    assert!(matches!(err, Error::AmbiguousKey { count: 2, .. }), "{err}");
    let one = Pkcs11Backend::open(
        &spec,
        &KeySelector {
            label: Some(dup),
            id: Some(vec![2]),
        },
        PoolOptions::default(),
    );
    assert!(one.is_ok(), "label + id selects one");

    // A key without CKA_SIGN.
    let nosign = unique_label("nosign");
    let mut t: Vec<Attribute> = key_template(&nosign, b"\x09", true)
        .into_iter()
        .map(|a| match a {
            Attribute::Sign(_) => Attribute::Sign(false),
            other => other,
        })
        .collect();
    t.push(Attribute::Value(vec![4; 32]));
    create_raw(&spec, &t);
    let err = open(&spec, &nosign).unwrap_err();
    assert!(matches!(err, Error::KeyCannotSign { .. }), "{err}");
    assert!(err.to_string().contains("CKA_SIGN"));
}

#[test]
fn sha256_hmac_key_type_works_too() {
    let Some(spec) = spec() else { return };
    let label = unique_label("ckk-hmac");
    let mut t: Vec<Attribute> = key_template(&label, b"\x0b", true)
        .into_iter()
        .map(|a| match a {
            Attribute::KeyType(_) => Attribute::KeyType(KeyType::SHA256_HMAC),
            other => other,
        })
        .collect();
    t.push(Attribute::Value(vec![9; 40]));
    create_raw(&spec, &t);
    let tag = open(&spec, &label).unwrap().sign(b"m").unwrap();
    assert_eq!(tag, software(&[9; 40]).sign(b"m").unwrap());
    let _ = ObjectClass::SECRET_KEY;
}

#[test]
fn eight_threads_thousand_signs_each() {
    let Some(spec) = spec() else { return };
    let token = Token::open(&spec).unwrap();
    let label = unique_label("threads");
    let key = vec![0x5a; 64];
    token
        .import(&label, None, &SecretBytes::new(key.clone()), true)
        .unwrap();
    let hsm = Arc::new(
        Pkcs11Backend::open(
            &spec,
            &by_label(&label),
            PoolOptions {
                max_sessions: 4,
                ..PoolOptions::default()
            },
        )
        .unwrap(),
    );
    let reference = Arc::new(software(&key));
    let handles: Vec<_> = (0..8u32)
        .map(|t| {
            let hsm = hsm.clone();
            let reference = reference.clone();
            std::thread::spawn(move || {
                for i in 0..1000u32 {
                    let msg = format!("thread {t} message {i}");
                    let tag = hsm.sign(msg.as_bytes()).unwrap();
                    assert_eq!(tag, reference.sign(msg.as_bytes()).unwrap(), "{msg}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker panicked");
    }
    assert_eq!(hsm.recoveries(), 0);
}
