//! The `reef` command-line tool (DESIGN §6). Each invocation is its own
//! process: it acts and exits with a code from the contract.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use reef_manifest::store::StoreUrl;

/// Reef: a document store whose only source of truth is object storage.
#[derive(Parser)]
#[command(name = "reef", version)]
struct Cli {
    /// Where the data lives: a directory path, `file://`, `memory://` or
    /// `s3://bucket/prefix` (credentials from the AWS_* variables).
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
        // The reader went away (`reef ... | head`): nothing left to say.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit_code(&err))
        }
    }
}

/// DESIGN §6 exit codes: 2 for bad input, 70 for storage or internal
/// errors. (1, 3 and 4 arrive with the commands that produce them.)
fn exit_code(err: &anyhow::Error) -> u8 {
    let bad_input = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<reef_manifest::Error>(),
            Some(
                reef_manifest::Error::InvalidUrl { .. }
                    | reef_manifest::Error::InvalidKey { .. }
                    | reef_manifest::Error::InvalidName { .. }
            )
        ) || matches!(
            cause.downcast_ref::<reef_format::FormatError>(),
            Some(reef_format::FormatError::Invalid { .. })
        )
    });
    if bad_input { 2 } else { 70 }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The demo writes real files: it needs a local directory.
fn store_dir(url: &str) -> anyhow::Result<PathBuf> {
    match StoreUrl::parse(url)? {
        StoreUrl::Local(path) => Ok(path),
        _ => anyhow::bail!(
            "store URL {url:?}: the demo runs on a local directory (a path or file://)"
        ),
    }
}
