//! The `hallpass` binary: `serve` (the default), `keys generate|list|rotate|retire`,
//! `users create`, `openapi`. Parsing and dispatch only; each command lives in [`cli`].

use std::process::ExitCode;

use clap::Parser;

mod cli;

#[tokio::main]
async fn main() -> ExitCode {
    hallpass::telemetry::init();
    cli::Cli::parse().run().await
}
