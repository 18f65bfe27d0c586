//! The `hallpass` binary: `serve` (the default), `keys generate|list|rotate|retire`,
//! `users create`, `openapi`. Parsing and dispatch only; each command lives in [`cli`].

use std::process::ExitCode;

use clap::Parser;

/// mimalloc (the `mimalloc` feature, on by default): cheaper allocations on every request
/// than the system allocator; the README's benchmark table has the before and after.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

#[tokio::main]
async fn main() -> ExitCode {
    hallpass::telemetry::init();
    cli::Cli::parse().run().await
}
