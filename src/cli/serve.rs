//! `hallpass serve` (and `hallpass` alone): run the server until Ctrl-C.

use hallpass::{Application, config::Config, startup};

use super::CmdResult;

/// Builds the application from `config` and serves until Ctrl-C, then drains.
pub async fn run(config: Config) -> CmdResult {
    let issuer = config.issuer.clone();
    let resources = hallpass::oauth::resource::identifiers(&config).join(" ");
    let app = Application::build(config).await?;
    tracing::info!(port = app.port(), %issuer, %resources, "hallpass listening");
    app.run(startup::ctrl_c()).await?;
    Ok(())
}
