//! `hallpass keys generate|list|rotate|retire`: the signing keys in the keys directory. Each
//! takes only the keys settings ([`KeyArgs`]), after the subcommand
//! (`hallpass keys list --keys-dir /srv/keys`).

use clap::Subcommand;
use hallpass::{
    config::KeyArgs,
    keys::{KeySet, SigningKey},
    time::{Clock, SystemClock},
};

use super::CmdResult;

/// The key commands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a key of the configured algorithm that signs from now on (first key, or an
    /// emergency replacement). For routine rotation use `rotate`.
    Generate(KeyArgs),
    /// List the keys: kid, algorithm, not_before, state (next, active, retiring, retired).
    List(KeyArgs),
    /// Add the next key: published now, signing after one JWKS max-age plus a minute, so every
    /// resource server has it cached first. Also deletes the files of retired keys.
    Rotate(KeyArgs),
    /// Retire a key now (for example a compromised one): it leaves the JWKS and never signs.
    Retire {
        /// The key's kid.
        kid: String,
        /// Retire it even if no other key can sign.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        keys: KeyArgs,
    },
}

/// Runs one key command.
pub fn run(cmd: KeysCommand) -> CmdResult {
    match cmd {
        KeysCommand::Generate(args) => generate(&args),
        KeysCommand::List(args) => list(&args),
        KeysCommand::Rotate(args) => rotate(&args),
        KeysCommand::Retire { kid, force, keys } => {
            hallpass::keys::retire(&keys.keys_dir, &kid, SystemClock.now(), force)?;
            println!("retired {kid}");
            Ok(())
        }
    }
}

fn generate(args: &KeyArgs) -> CmdResult {
    let now = SystemClock.now();
    let (key, der) = SigningKey::generate(args.signing_alg, now, now)?;
    let path = key.write(&args.keys_dir, &der)?;
    println!("{}\t{}\t{}", key.kid, key.meta.alg.as_str(), path.display());
    Ok(())
}

fn list(args: &KeyArgs) -> CmdResult {
    let keys = KeySet::load(&args.keys_dir)?;
    let now = SystemClock.now();
    println!("kid\talg\tnot_before\tstate");
    for k in keys.all() {
        let state = keys.state_of(k, now, args.access_token_ttl);
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

fn rotate(args: &KeyArgs) -> CmdResult {
    let now = SystemClock.now();
    let lead = hallpass::keys::rotation_lead(args.jwks_max_age);
    let key = hallpass::keys::rotate(
        &args.keys_dir,
        args.signing_alg,
        now,
        lead,
        args.access_token_ttl,
    )?;
    println!(
        "{}\t{}\tsigns from {} (in {lead} s)",
        key.kid,
        key.meta.alg.as_str(),
        key.meta.not_before
    );
    Ok(())
}
