//! `hallpass users create <name>`: make a user directly in the store (for closed
//! registration). Takes only the store settings ([`RedisArgs`]).

use std::sync::Arc;

use clap::Subcommand;
use hallpass::{
    config::{Config, RedisArgs},
    crypto::{Passwords, random_bytes},
    keys::KeySet,
    state::{AppState, StateParts},
    store::redis::RedisStore,
    time::SystemClock,
};

use super::CmdResult;

/// The user commands.
#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user. The password is read from HALLPASS_NEW_USER_PASSWORD, or else from the
    /// first line of standard input.
    Create {
        /// The username.
        username: String,
        #[command(flatten)]
        redis: RedisArgs,
    },
}

/// Runs one user command.
pub async fn run(cmd: UsersCommand) -> CmdResult {
    match cmd {
        UsersCommand::Create { username, redis } => create(redis, &username).await,
    }
}

async fn create(redis: RedisArgs, username: &str) -> CmdResult {
    let Some(options) = redis.options()? else {
        return Err("users create needs REDIS_URL or REDIS_CLUSTER_URLS: the memory store would forget the user when this command exits".into());
    };
    // A command cannot wait for Redis to come back: say what is wrong, in words, and stop.
    if let Err(problem) = RedisStore::open(options.clone()).check().await {
        return Err(format!("cannot use {}: {}", options.location(), problem.message()).into());
    }
    let password = match std::env::var("HALLPASS_NEW_USER_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let config = Config {
        redis_prefix: options.prefix.clone(),
        redis: Some(options),
        ..Config::default()
    };
    let store = hallpass::startup::build_store(&config)?;
    let state = AppState::from_parts(StateParts {
        config,
        store,
        keys: KeySet::default(),
        clock: Arc::new(SystemClock),
        passwords: Passwords::new()?,
        session_secret: random_bytes::<32>().to_vec(),
    });
    let user = hallpass::oauth::users::register(&state, username, &password).await?;
    println!("{}\t{}", user.id, user.username);
    Ok(())
}
