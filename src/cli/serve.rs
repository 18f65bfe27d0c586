//! `hallpass serve` (and `hallpass` alone): run the server until Ctrl-C.
//!
//! Once bound it prints one line to stdout, `listening on <address>:<port>` (as the
//! `beer-locker` binary does), so a supervisor or a test that passed `--bind 127.0.0.1:0`
//! learns the port. Logs go to stderr.

use std::{io::Write, net::SocketAddr};

use hallpass::{Application, config::Config, startup};

use super::CmdResult;

/// Builds the application from `config` and serves until Ctrl-C, then drains.
pub async fn run(config: Config) -> CmdResult {
    let issuer = config.issuer.clone();
    let resources = hallpass::oauth::resource::identifiers(&config).join(" ");
    let ip = config.bind.ip();
    let app = Application::build(config).await?;
    let bound = SocketAddr::new(ip, app.port());
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {bound}")?;
        out.flush()?;
    }
    tracing::info!(port = app.port(), %issuer, %resources, "hallpass listening");
    app.run(startup::ctrl_c()).await?;
    Ok(())
}
