//! The `reef` command line (DESIGN §6): argument parsing, dispatch, and
//! the process's exit code. Each invocation opens the store its URL
//! names, acts through one [`reef_engine::Engine`], closes it and exits.
//!
//! # Modules
//! - [`input`]: `reef write`'s JSON-lines input, validated before any I/O.
//! - [`ops`]: the data commands against the engine.
//! - [`output`]: JSON lines on stdout through a fallible writer.
//! - [`exit`]: exit codes and the stderr report.

pub mod compactor;
pub mod exit;
pub mod input;
pub mod inspect;
pub mod ops;
pub mod output;
pub mod pins;
pub mod repair;
pub mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use reef_engine::{Engine, EngineOptions, ScanRange};
use reef_manifest::layout::validate_namespace;
use reef_manifest::store::{StoreUrl, open_store};

use exit::InputError;
use output::Out;

/// Reef: a document store whose only source of truth is object storage.
#[derive(Parser, Debug)]
#[command(
    name = "reef",
    version,
    after_help = "Store URLs: a directory path (absolute, or relative to the working directory), \
file:///absolute/path, or s3://bucket/prefix (endpoint, region and credentials from the AWS_* \
variables). memory:// is refused: each command is a process of its own.

Exit codes: 0 ok; 1 not found (document or namespace); 2 bad input or usage; 3 precondition \
failed, idempotency conflict, or a repair refused because it would give up data; 4 verify (or \
the verify after repair or rebuild) found problems; 65 stored data is damaged (run `reef \
verify`); 70 internal error; 75 temporary \
(contention, overload, a fenced stale writer, storage unreachable, another process committing \
during repair): retry."
)]
pub struct Cli {
    /// Where the data lives: a directory path (absolute, or relative to the
    /// working directory), `file:///absolute/path`, or
    /// `s3://bucket/prefix` (endpoint, region and credentials from the
    /// AWS_* variables). `memory://` is refused: each command is its own
    /// process, so its writes would vanish on exit.
    #[arg(long, global = true, default_value = "./reef-data")]
    pub store: String,
    /// Print JSON (the only output format; accepted for scripts that ask).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Applies ops (JSON lines, one per line) atomically to a namespace.
    Write {
        /// The namespace.
        ns: String,
        /// Makes a retry of this request return the original result.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Read the ops from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Prints one document as {"id","version","doc"}; exit 1 if absent.
    Get {
        /// The namespace.
        ns: String,
        /// The document id.
        id: String,
        /// Read as checkpoint NAME pinned the namespace.
        #[arg(long, value_name = "NAME")]
        at: Option<String>,
    },
    /// Prints documents in id order, one JSON object per line.
    Scan {
        /// The namespace.
        ns: String,
        /// First id (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// End id (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Only ids starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// At most this many documents.
        #[arg(long)]
        limit: Option<usize>,
        /// Read as checkpoint NAME pinned the namespace.
        #[arg(long, value_name = "NAME")]
        at: Option<String>,
    },
    /// Prints a namespace's figures as one JSON object.
    Stats {
        /// The namespace.
        ns: String,
    },
    /// Lists the namespaces of the store, one JSON string per line.
    Namespaces,
    /// Folds the namespace's unfolded WAL into a level-0 segment now.
    Flush {
        /// The namespace.
        ns: String,
    },
    /// Compacts level 0 (and overlapping level 1) into level 1 now.
    Compact {
        /// The namespace.
        ns: String,
    },
    /// Deletes what no manifest, lease or checkpoint can reach.
    Gc {
        /// The namespace.
        ns: String,
        /// Keep superseded manifests and unlisted segments this long.
        #[arg(long, default_value_t = 600)]
        grace: u64,
    },
    /// Runs fold, compaction and GC in a loop against the bucket (a
    /// standalone compactor process; writers keep writing meanwhile).
    Compactor {
        /// The namespace to maintain.
        #[arg(long)]
        namespace: String,
        /// Pause between rounds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Stop after this many rounds (default: run until killed).
        #[arg(long)]
        rounds: Option<u64>,
    },
    /// Checks one namespace (or all) from the bucket alone: every object's
    /// framing and checksum, every reference of the current manifest, of
    /// leases and checkpoints, the WAL's contiguity, HEAD. Exit 0 clean,
    /// 4 with a report naming each object that is wrong.
    Verify {
        /// The namespace (default: every namespace in the store).
        ns: Option<String>,
        /// Also decode every block and check the content checksums against
        /// the manifest's totals.
        #[arg(long)]
        deep: bool,
    },
    /// Repairs a damaged namespace from the bucket alone: HEAD, a
    /// rollback to the newest intact manifest when the WAL still covers
    /// the difference (nothing lost), damaged objects moved to
    /// quarantine/, then GC. A fix that gives up acknowledged data is
    /// refused (exit 3, nothing written, naming the LSNs, ids and versions
    /// at stake) unless --accept-data-loss. Ends with a verify (exit 4 if
    /// still not clean).
    Repair {
        /// The namespace.
        ns: String,
        /// Print the plan; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Allow fixes that give up acknowledged data (named in the report).
        #[arg(long)]
        accept_data_loss: bool,
        /// The grace GC gives superseded objects afterwards, in seconds.
        #[arg(long, default_value_t = 600)]
        grace: u64,
    },
    /// Builds a new manifest from the segments and WAL in the bucket, for
    /// a namespace none of whose manifests can be read. Uses every intact
    /// segment, replays the unfolded WAL, reports what it used and what it
    /// skipped and why, then verifies. Run with writers and compactors
    /// stopped. Refused (exit 2) while a manifest decodes: use repair.
    Rebuild {
        /// The namespace.
        ns: String,
        /// Print the plan; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Checkpoints: durable, named pins of a namespace's state.
    Checkpoint {
        /// create, list or delete.
        #[command(subcommand)]
        action: pins::CheckpointAction,
    },
    /// Leases: the pins of snapshots being read.
    Lease {
        /// list or release.
        #[command(subcommand)]
        action: pins::LeaseAction,
    },
    /// Prints any Reef object (HEAD, manifest, WAL record, segment, lease,
    /// checkpoint) decoded, as one JSON object: header fields, footer,
    /// first entries, setsums. A damaged object is refused with the reason.
    Inspect {
        /// The object's key, e.g. ns/orders/manifest/00000000000000000003.mf
        key: String,
    },
    /// Shows what Reef's codecs do, on a local directory.
    Demo,
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Usage errors exit 2, --help and --version 0 (clap's codes).
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(exit::BAD_INPUT));
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`reef ... | head`): nothing left to say.
        Err(err) if exit::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            exit::report(&err);
            ExitCode::from(exit::exit_code(&err))
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<()> {
    if let Command::Demo = cli.command {
        return crate::demo::run(&store_dir(&cli.store)?);
    }
    // Everything that can be refused without I/O is refused first: the
    // URL, the namespace name, the whole write input.
    if StoreUrl::parse(&cli.store)? == StoreUrl::Memory {
        return Err(InputError(format!(
            "store URL {:?}: memory:// lives inside one process and every reef command is a \
             process of its own, so writes would vanish when it exits; use a directory or s3://",
            cli.store
        ))
        .into());
    }
    let store = open_store(&cli.store)?;
    if let Some(ns) = namespace_of(&cli.command) {
        validate_namespace(ns)?;
    }
    if let Command::Compactor {
        namespace,
        interval_ms,
        rounds,
    } = &cli.command
    {
        return compactor::run(store, namespace, *interval_ms, *rounds);
    }
    if let Command::Inspect { key } = &cli.command {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let dump = runtime.block_on(inspect::run(&store, key))?;
        let mut out = Out::new();
        out.line(&dump)?;
        return out.finish().map_err(Into::into);
    }
    if let Command::Repair {
        ns,
        dry_run,
        accept_data_loss,
        grace,
    } = &cli.command
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        return runtime.block_on(repair::run(
            store,
            ns,
            *dry_run,
            *accept_data_loss,
            *grace,
            cli.json,
        ));
    }
    if let Command::Rebuild { ns, dry_run } = &cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        return runtime.block_on(repair::run_rebuild(store, ns, *dry_run, cli.json));
    }
    if let Command::Verify { ns, deep } = &cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        return runtime.block_on(verify::run(store, ns.as_deref(), *deep, cli.json));
    }
    let parsed = match &cli.command {
        Command::Write {
            idempotency_key,
            file,
            ..
        } => {
            let limits = EngineOptions::default().limits;
            Some(input::parse_request(
                open_input(file.as_deref())?,
                idempotency_key.clone(),
                &limits,
            )?)
        }
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        // One invocation is short: folding belongs to `flush` and to the
        // compactor, not to a background task the exit would cut short.
        let mut options = EngineOptions {
            background: false,
            ..EngineOptions::default()
        };
        if let Command::Gc { grace, .. } = &cli.command {
            options.compactor.gc_grace_ms = grace.saturating_mul(1000);
        }
        let engine = Engine::open(store, options).await?;
        let mut out = Out::new();
        let acted = act(&engine, &cli.command, parsed.as_ref(), &mut out).await;
        // Close even after a failure: in-flight commits finish first.
        let closed = engine.close().await;
        acted?;
        closed?;
        out.finish()?;
        Ok(())
    })
}

async fn act(
    engine: &Engine,
    command: &Command,
    parsed: Option<&input::ParsedRequest>,
    out: &mut Out,
) -> Result<()> {
    // Only a write may create a namespace; anything else on a name with no
    // objects is a typo or the wrong store, and says so.
    if let Some(ns) = namespace_of(command)
        && !matches!(command, Command::Write { .. })
        && !engine.exists(ns).await?
    {
        return Err(exit::NotFound(format!(
            "namespace {ns:?} does not exist in this store (no object under ns/{ns}/); \
             `reef namespaces` lists the ones that do"
        ))
        .into());
    }
    match command {
        Command::Write { ns, .. } => {
            let parsed = parsed.context("write input was not parsed")?;
            ops::write(engine, ns, parsed, out).await
        }
        Command::Get { ns, id, at: None } => ops::get(engine, ns, id, out).await,
        Command::Get {
            ns,
            id,
            at: Some(name),
        } => match pins::at(engine, ns, name).await?.get(id).await? {
            Some(doc) => Ok(out.line(&output::doc_json(&doc))?),
            None => Err(exit::NotFound(format!(
                "namespace {ns} at checkpoint {name:?}: no document with id {id:?}"
            ))
            .into()),
        },
        Command::Scan {
            ns,
            from,
            to,
            prefix,
            limit,
            at,
        } => {
            let range = ScanRange {
                from: from.clone(),
                to: to.clone(),
                prefix: prefix.clone(),
                limit: *limit,
            };
            match at {
                None => ops::scan(engine, ns, &range, out).await,
                Some(name) => {
                    for doc in pins::at(engine, ns, name).await?.scan(&range).await? {
                        out.line(&output::doc_json(&doc))?;
                    }
                    Ok(())
                }
            }
        }
        Command::Checkpoint { action } => pins::checkpoint(engine, action, out).await,
        Command::Lease { action } => pins::lease(engine, action, out).await,
        Command::Stats { ns } => ops::stats(engine, ns, out).await,
        Command::Namespaces => ops::namespaces(engine, out).await,
        Command::Flush { ns } => out
            .line(&compactor::fold_json(&engine.flush(ns).await?))
            .map_err(Into::into),
        Command::Compact { ns } => out
            .line(&compactor::compact_json(&engine.compact(ns, true).await?))
            .map_err(Into::into),
        Command::Gc { ns, .. } => out
            .line(&compactor::gc_json(&engine.gc(ns).await?))
            .map_err(Into::into),
        Command::Compactor { .. } => anyhow::bail!("the compactor runs without an engine"),
        Command::Verify { .. } => anyhow::bail!("verify runs without an engine"),
        Command::Repair { .. } | Command::Rebuild { .. } => {
            anyhow::bail!("repair and rebuild run without an engine")
        }
        Command::Inspect { .. } => anyhow::bail!("inspect runs without an engine"),
        Command::Demo => anyhow::bail!("demo runs without an engine"),
    }
}

fn namespace_of(command: &Command) -> Option<&str> {
    match command {
        Command::Write { ns, .. }
        | Command::Get { ns, .. }
        | Command::Scan { ns, .. }
        | Command::Stats { ns }
        | Command::Flush { ns }
        | Command::Compact { ns }
        | Command::Gc { ns, .. }
        | Command::Repair { ns, .. }
        | Command::Rebuild { ns, .. } => Some(ns),
        Command::Compactor { namespace, .. } => Some(namespace),
        Command::Checkpoint { action } => Some(action.namespace()),
        Command::Lease { action } => Some(action.namespace()),
        Command::Verify { ns, .. } => ns.as_deref(),
        Command::Namespaces | Command::Demo | Command::Inspect { .. } => None,
    }
}

/// The write input: all of `file`, or of stdin.
/// The ops input: `--file PATH`, or stdin (also `--file -`), read as a
/// stream (bounded by `input::parse_request`).
fn open_input(file: Option<&Path>) -> Result<Box<dyn std::io::BufRead>> {
    match file {
        Some(path) if path != Path::new("-") => {
            let f = std::fs::File::open(path).map_err(|e| {
                InputError(format!("--file {}: cannot read it: {e}", path.display()))
            })?;
            Ok(Box::new(std::io::BufReader::new(f)))
        }
        _ => Ok(Box::new(std::io::BufReader::new(std::io::stdin()))),
    }
}

/// The demo writes real files: it needs a local directory.
fn store_dir(url: &str) -> Result<PathBuf> {
    match StoreUrl::parse(url)? {
        StoreUrl::Local(path) => Ok(path),
        _ => anyhow::bail!(
            "store URL {url:?}: the demo runs on a local directory (a path or file://)"
        ),
    }
}
