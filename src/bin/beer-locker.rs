//! The `beer-locker` binary: the tutorial's beer API as a separate resource server that
//! trusts only the JWKS of its Hallpass issuer. See [`hallpass::beer_locker`].
//!
//! Once bound it prints one line to stdout, `listening on <address>:<port>`, so a supervisor
//! or a test that passed `--bind 127.0.0.1:0` learns the port. Logs go to stderr.

use std::{io::Write, process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use hallpass::{
    beer_locker::{BeerLockerArgs, BeerLockerConfig, BeerLockerServer},
    time::SystemClock,
};

/// mimalloc (the `mimalloc` feature, on by default): cheaper allocations on every request
/// than the system allocator; the README's benchmark table has the before and after.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Start-up attempts to fetch the issuer's keys (about a minute in all).
const PREFETCH_ATTEMPTS: u32 = 15;

/// Beer Locker: the tutorial's protected beer API, verifying Hallpass access tokens offline.
#[derive(Parser)]
#[command(
    name = "beer-locker",
    version,
    about = "The beer locker: the tutorial's beer API as a resource server that trusts only the JWKS of its Hallpass issuer."
)]
struct Cli {
    #[command(flatten)]
    args: BeerLockerArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    hallpass::telemetry::init();
    let cli = Cli::parse();
    let config = match BeerLockerConfig::from_args(cli.args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: BeerLockerConfig) -> Result<(), Box<dyn std::error::Error>> {
    // A store that cannot work (wrong password, TLS or CA) stops the start with a message
    // that names it, as Hallpass's does; one that is only unreachable is a warning.
    hallpass::startup::check_redis(config.redis.as_ref()).await?;
    let store = config.open_store()?;
    let server = BeerLockerServer::bind(&config, store, Arc::new(SystemClock)).await?;
    let resource = server.locker().resource.clone();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.local_addr())?;
        out.flush()?;
    }
    tracing::info!(%resource, issuer = %config.issuer, audience = %server.locker().verifier.audience(), "beer locker listening");

    // Fetch the issuer's keys now, so a misconfiguration shows in the log at once and the
    // first request does not wait. Hallpass may still be starting (both are often launched
    // together), so retry for a while; requests fetch the keys themselves in any case.
    let verifier = server.locker().verifier.clone();
    tokio::spawn(async move {
        for attempt in 0..PREFETCH_ATTEMPTS {
            if verifier.prefetch().await.is_ok() {
                tracing::info!(issuer = %verifier.issuer(), "fetched the issuer's signing keys");
                return;
            }
            tokio::time::sleep(Duration::from_secs(1 + u64::from(attempt.min(4)))).await;
        }
        tracing::warn!(issuer = %verifier.issuer(), "the issuer's signing keys could not be fetched at start; check BEER_LOCKER_ISSUER");
    });

    server.run(hallpass::startup::ctrl_c()).await?;
    Ok(())
}
