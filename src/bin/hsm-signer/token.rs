//! PKCS#11 commands: key provisioning and doctor (filled in with the backend).

use std::process::ExitCode;

use hsm_signer::config::Profile;
use hsm_signer::KeyBackend;

use crate::cli::{DoctorArgs, KeyArgs, KeyCommand};
use crate::failure::Failure;

pub(crate) fn open_key(_key: &KeyArgs, _profile: &Profile) -> Result<Box<dyn KeyBackend>, Failure> {
    Err(Failure::msg("PKCS#11 keys are not available yet"))
}

pub(crate) fn run_key(_cmd: &KeyCommand, _profile: &Profile) -> Result<ExitCode, Failure> {
    Err(Failure::msg("PKCS#11 keys are not available yet"))
}

pub(crate) fn run_doctor(_args: &DoctorArgs, _profile: &Profile) -> Result<ExitCode, Failure> {
    Err(Failure::msg("PKCS#11 keys are not available yet"))
}
