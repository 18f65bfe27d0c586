//! The `hallpass` binary: `serve` (the default), `keys generate|list`, `openapi`.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hallpass::{
    Application,
    config::{Config, ConfigArgs},
    keys::{KeySet, SigningKey},
    time::{Clock, SystemClock},
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
    /// Manage users directly in the store (for closed registration).
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user. The password is read from HALLPASS_NEW_USER_PASSWORD, or else from the
    /// first line of standard input.
    Create {
        /// The username.
        username: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a key of the configured algorithm that signs from now on (first key, or an
    /// emergency replacement). For routine rotation use `rotate`.
    Generate,
    /// List the keys: kid, algorithm, not_before, state (next, active, retiring, retired).
    List,
    /// Add the next key: published now, signing after one JWKS max-age plus a minute, so every
    /// resource server has it cached first. Also deletes the files of retired keys.
    Rotate,
    /// Retire a key now (for example a compromised one): it leaves the JWKS and never signs.
    Retire {
        /// The key's kid.
        kid: String,
        /// Retire it even if no other key can sign.
        #[arg(long)]
        force: bool,
    },
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
        Command::Keys(KeysCommand::Rotate) => keys_rotate(&config),
        Command::Keys(KeysCommand::Retire { kid, force }) => {
            hallpass::keys::retire(&config.keys_dir, &kid, SystemClock.now(), force)
                .map(|()| println!("retired {kid}"))
                .map_err(Into::into)
        }
        Command::Openapi => openapi(config).await,
        Command::Users(UsersCommand::Create { username }) => users_create(config, &username).await,
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
    println!("kid\talg\tnot_before\tstate");
    for k in keys.all() {
        let state = keys.state_of(k, now, config.access_token_ttl);
        println!(
            "{}\t{}\t{}\t{}",
            k.kid,
            k.meta.alg.as_str(),
            k.meta.not_before,
            state.as_str()
        );
    }
    Ok(())
}

fn keys_rotate(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let now = SystemClock.now();
    let lead = hallpass::keys::rotation_lead(config.jwks_max_age);
    let key = hallpass::keys::rotate(
        &config.keys_dir,
        config.signing_alg,
        now,
        lead,
        config.access_token_ttl,
    )?;
    println!(
        "{}\t{}\tsigns from {} (in {lead} s)",
        key.kid,
        key.meta.alg.as_str(),
        key.meta.not_before
    );
    Ok(())
}

async fn users_create(config: Config, username: &str) -> Result<(), Box<dyn std::error::Error>> {
    if config.redis_url.is_none() {
        return Err("users create needs REDIS_URL: the memory store would forget the user when this command exits".into());
    }
    let password = match std::env::var("HALLPASS_NEW_USER_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let store = hallpass::startup::build_store(&config)?;
    let state = hallpass::state::AppState::new(
        config,
        store,
        KeySet::default(),
        std::sync::Arc::new(SystemClock),
        hallpass::crypto::Passwords::new().await?,
        &hallpass::crypto::random_bytes::<32>(),
    );
    let user = hallpass::oauth::users::register(&state, username, &password).await?;
    println!("{}\t{}", user.id, user.username);
    Ok(())
}

async fn openapi(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let state = hallpass::state::spec_state(config).await?;
    print!("{}", hallpass::api::build_openapi(&state).spec_yaml());
    Ok(())
}
