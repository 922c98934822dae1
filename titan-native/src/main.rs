use std::process::ExitCode;

use clap::Parser;
use titan_native::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    titan_native::logging::init(cli.log.as_deref());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
