//! `hallpass openapi`: print the OpenAPI spec the server would serve with these settings.

use hallpass::config::Config;

use super::CmdResult;

/// Prints the spec (YAML) to stdout; touches neither disk nor network.
pub async fn run(config: Config) -> CmdResult {
    let state = hallpass::state::spec_state(config).await?;
    print!("{}", hallpass::api::spec(&state)?.yaml());
    Ok(())
}
