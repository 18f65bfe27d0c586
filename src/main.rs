//! The `hallpass` binary: `serve` (the default), `keys generate|list`, `openapi`.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hallpass::{
    Application,
    config::{Config, ConfigArgs, SigningAlg},
    keys::{KeySet, SigningKey},
    state::{Clock, SystemClock},
};

/// Hallpass: an OAuth 2.0 authorization server issuing JWT access tokens.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage signing keys in the keys directory.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI spec (YAML) to stdout.
    Openapi,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a key that signs from now on (the newest key of the configured algorithm signs).
    Generate,
    /// List the keys: kid, algorithm, state.
    List,
}

#[tokio::main]
async fn main() -> ExitCode {
    hallpass::telemetry::init();
    let cli = Cli::parse();
    let config = match Config::from_args(cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Keys(KeysCommand::Generate) => keys_generate(&config),
        Command::Keys(KeysCommand::List) => keys_list(&config),
        Command::Openapi => openapi(config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let issuer = config.issuer.clone();
    let app = Application::build(config).await?;
    tracing::info!(port = app.port(), %issuer, "hallpass listening");
    app.run_with_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

fn keys_generate(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let now = SystemClock.now();
    let (key, der) = SigningKey::generate(config.signing_alg, now, now)?;
    let path = key.write(&config.keys_dir, &der)?;
    println!("{}\t{}\t{}", key.kid, key.meta.alg.as_str(), path.display());
    Ok(())
}

fn keys_list(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let keys = KeySet::load(&config.keys_dir)?;
    let now = SystemClock.now();
    let active: Vec<String> = [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256]
        .iter()
        .filter_map(|alg| keys.active(*alg, now).ok().map(|k| k.kid.clone()))
        .collect();
    println!("kid\talg\tnot_before\tstate");
    for k in keys.all() {
        let state = if k.meta.not_before > now {
            "next"
        } else if active.contains(&k.kid) && k.meta.alg == config.signing_alg {
            "active"
        } else {
            "published"
        };
        println!(
            "{}\t{}\t{}\t{}",
            k.kid,
            k.meta.alg.as_str(),
            k.meta.not_before,
            state
        );
    }
    Ok(())
}

async fn openapi(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let state = hallpass::state::spec_state(config).await?;
    print!("{}", hallpass::api::build_openapi(&state).spec_yaml());
    Ok(())
}
