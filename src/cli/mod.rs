//! The command line: one subcommand a file, each taking only the flags it uses, so
//! `hallpass keys list --help` lists the keys settings and not every server flag. With no
//! subcommand, `hallpass [FLAGS]` serves, reading every `HALLPASS_*` variable as before.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hallpass::config::{Config, ConfigArgs, ConfigError};

mod keys;
mod openapi;
mod serve;
mod users;

/// What a command returns when it fails: printed as `error: …`, exit status 1 (2 for a
/// [`ConfigError`], like a bad server setting).
type CmdResult = Result<(), Box<dyn std::error::Error>>;

/// Hallpass: an OAuth 2.0 authorization server issuing JWT access tokens.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The server's settings, for `hallpass [FLAGS]` without a subcommand.
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ConfigArgs),
    /// Manage signing keys in the keys directory.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Print the OpenAPI spec (YAML) to stdout.
    Openapi(ConfigArgs),
    /// Manage users directly in the store (for closed registration).
    #[command(subcommand)]
    Users(users::UsersCommand),
}

impl Cli {
    /// Runs the chosen command; a configuration error exits with status 2, any other error 1.
    pub async fn run(self) -> ExitCode {
        let result = match self.command {
            None => match validated(self.config) {
                Ok(config) => serve::run(config).await,
                Err(code) => return code,
            },
            Some(Command::Serve(args)) => match validated(args) {
                Ok(config) => serve::run(config).await,
                Err(code) => return code,
            },
            Some(Command::Openapi(args)) => match validated(args) {
                Ok(config) => openapi::run(config).await,
                Err(code) => return code,
            },
            Some(Command::Keys(cmd)) => keys::run(cmd),
            Some(Command::Users(cmd)) => users::run(cmd).await,
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.is::<ConfigError>() => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Validates settings, printing the fix-it message; exit status 2 when they are unusable.
fn validated(args: ConfigArgs) -> Result<Config, ExitCode> {
    Config::from_args(args).map_err(|e: ConfigError| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}
