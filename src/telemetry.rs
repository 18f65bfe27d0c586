//! Logging: a `tracing` subscriber writing to stderr, filtered by `RUST_LOG` (default `info`).
//! Spans and events never carry passwords, secrets, codes or tokens: handlers and flows are
//! instrumented with `skip_all` and record only ids.

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes in files, pipes and journald: only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
