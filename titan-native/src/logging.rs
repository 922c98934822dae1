//! stderr logging through `tracing`.

use tracing_subscriber::EnvFilter;

/// `filter` (from `--log`), else `RUST_LOG`, else warnings only, so that
/// stdout carries results and stderr stays quiet unless something is wrong.
pub fn init(filter: Option<&str>) {
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
