pub(crate) fn run(
    _a: &crate::cli::ProxyArgs,
    _p: &hsm_signer::config::Profile,
) -> Result<std::process::ExitCode, crate::failure::Failure> {
    Err(crate::failure::Failure::msg("todo"))
}
