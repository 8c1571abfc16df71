//! Azure HMAC-SHA256 request signing and verification.
//!
//! [`canonical`] is pure (no key, no clock); [`sign`] and [`verify`] call the
//! [`KeyBackend`](crate::backend::KeyBackend) once per request and take the
//! time as an argument.

pub mod auth_header;
pub mod canonical;
pub mod date;
pub mod http;
pub mod sign;
pub mod verify;
