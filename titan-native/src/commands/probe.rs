//! `titan probe`: verify-protocol round trips, connection setup time and bad
//! input against a titan; one JSON object on stdout.

use anyhow::{Context, Result};

use crate::cli::ProbeArgs;
use crate::mesh::probe::{ProbeOptions, run as run_probe};

pub fn run(args: ProbeArgs) -> Result<()> {
    let options = ProbeOptions {
        connect: args.connect,
        rounds: args.rounds.max(1),
        k: args.k.min(shared_protocol::wire::verify::MAX_DRAFT_TOKENS),
        abuse: args.abuse,
        flood_streams: args.flood_streams,
        flood_connections: args.flood_connections,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the network runtime")?;
    let report = runtime.block_on(run_probe(options))?;
    println!("{report}");
    Ok(())
}
