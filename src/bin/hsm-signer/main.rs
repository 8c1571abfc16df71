//! The `hsm-signer` command line.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod failure;
mod hmac;
mod keys;
#[cfg(feature = "server")]
mod proxy;
#[cfg(feature = "server")]
mod serve;
mod sign;
#[cfg(feature = "pkcs11")]
mod token;
mod verify;
#[cfg(feature = "server")]
mod workers;

use cli::{Cli, Command};
use failure::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}

fn run(cli: &Cli) -> Result<ExitCode, Failure> {
    let profile = keys::load_profile(cli.config.as_ref(), cli.profile.as_deref())?;
    match &cli.command {
        Command::Sign(args) => sign::run(args, &profile),
        Command::Verify(args) => verify::run(args, &profile),
        Command::Hmac(args) => hmac::run(args, &profile),
        Command::HmacVerify(args) => hmac::run_verify(args, &profile),
        #[cfg(feature = "pkcs11")]
        Command::Key(cmd) => token::run_key(cmd, &profile),
        #[cfg(feature = "pkcs11")]
        Command::Doctor(args) => token::run_doctor(args, &profile),
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(args, &profile),
        #[cfg(feature = "server")]
        Command::Proxy(args) => proxy::run(args, &profile),
        #[cfg(not(feature = "pkcs11"))]
        Command::Key(_) | Command::Doctor(_) => Err(Failure::msg(
            "this build has no PKCS#11 support (feature pkcs11)",
        )),
    }
}

/// Resolves on SIGINT or SIGTERM: servers finish in-flight requests, then stop.
#[cfg(feature = "server")]
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
