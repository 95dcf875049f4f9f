//! The `reef` command-line tool (DESIGN §6). Each invocation is its own
//! process: it acts and exits with a code from the contract.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Reef: a document store whose only source of truth is object storage.
#[derive(Parser)]
#[command(name = "reef", version)]
struct Cli {
    /// Where the data lives: a directory path or `file://` URL.
    #[arg(long, global = true, default_value = "./reef-data")]
    store: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Shows what Reef's codecs do, on a local directory.
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => store_dir(&cli.store).and_then(|dir| reef_admin::demo::run(&dir)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(70)
        }
    }
}

fn store_dir(url: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if url.contains("://") {
        anyhow::bail!("store URL {url:?}: only local directories are supported so far");
    }
    Ok(PathBuf::from(url))
}
