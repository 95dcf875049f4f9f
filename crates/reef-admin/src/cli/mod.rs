//! The `reef` command line (DESIGN §6): argument parsing, dispatch, and
//! the process's exit code. Each invocation opens the store its URL
//! names, acts through one [`reef_engine::Engine`], closes it and exits.
//!
//! # Modules
//! - [`input`]: `reef write`'s JSON-lines input, validated before any I/O.
//! - [`ops`]: the data commands against the engine.
//! - [`output`]: JSON lines on stdout through a fallible writer.
//! - [`exit`]: exit codes and the stderr report.

pub mod bench;
pub mod compactor;
pub mod exit;
pub mod import;
pub mod input;
pub mod inspect;
pub mod ops;
pub mod output;
pub mod pins;
pub mod repair;
pub mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use reef_engine::{Engine, EngineOptions, ScanRange};
use reef_manifest::layout::validate_namespace;
use reef_manifest::store::{CountingStore, DynStore, StoreUrl, open_store};

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
    #[arg(long, global = true, env = "REEF_STORE", default_value = "./reef-data")]
    pub store: String,
    /// Print JSON everywhere (data commands always do; `namespaces` prints
    /// plain names and `verify`, `repair` and `rebuild` a report for
    /// people without it).
    #[arg(long, global = true)]
    pub json: bool,
    /// More logs on stderr: -v commits, folds and GC; -vv each request and
    /// retry; -vvv everything. `RUST_LOG`, when set, decides instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Errors only on stderr (no warnings, no progress).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
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
    /// Bulk upserts from JSON lines or one JSON array of objects (a file,
    /// or stdin), the id taken from a field or a JSON pointer, in batches
    /// under the request limits. Each batch has an idempotency key derived
    /// from its content, so re-running an interrupted import writes only
    /// what is missing. Prints one summary line; a progress bar on a
    /// terminal.
    Import {
        /// The namespace.
        ns: String,
        /// The input (default, or `-`: stdin).
        file: Option<PathBuf>,
        /// The field holding each document's id.
        #[arg(long, default_value = "id", conflicts_with = "id_pointer")]
        id_field: String,
        /// A JSON pointer to each document's id (e.g. /meta/sku).
        #[arg(long)]
        id_pointer: Option<String>,
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
    /// Lists the namespaces of the store, one name per line (JSON strings
    /// with --json).
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
        /// Keep superseded manifests and unlisted segments this long
        /// (`90s`, `10m`, `1h`; a bare number is seconds).
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        grace: Duration,
    },
    /// Runs fold, compaction and GC in a loop against the bucket (a
    /// standalone compactor process; writers keep writing meanwhile).
    Compactor {
        /// The namespace to maintain.
        #[arg(required_unless_present = "namespace")]
        ns: Option<String>,
        /// The namespace (the older spelling of the argument).
        #[arg(long, hide = true, conflicts_with = "ns")]
        namespace: Option<String>,
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
        /// The grace GC gives superseded objects afterwards (`90s`, `10m`;
        /// a bare number is seconds).
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        grace: Duration,
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
    /// A load generator: writers share one engine and send upserts (or,
    /// with --reads, point reads) until --duration has passed; prints
    /// throughput, acknowledgement and read latency percentiles, store
    /// requests per acknowledged write and peak RSS.
    Bench {
        /// The namespace to write into (left in place afterwards).
        #[arg(default_value = "bench")]
        ns: String,
        /// Concurrent writers.
        #[arg(long, default_value_t = 16)]
        writers: usize,
        /// How long to run (e.g. 10s, 2m).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// Upserts per request.
        #[arg(long, default_value_t = 1)]
        ops: usize,
        /// Bytes of filler in each document.
        #[arg(long, default_value_t = 100)]
        doc_bytes: usize,
        /// How ids are chosen.
        #[arg(long, value_enum, default_value_t = bench::Keys::Unique)]
        keys: bench::Keys,
        /// Distinct ids with --keys uniform.
        #[arg(long, default_value_t = 100_000)]
        key_space: u64,
        /// Fraction of operations that are point reads (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        reads: f64,
        /// Fold nothing: leave every write in the WAL (to measure what
        /// opening a namespace with that much unfolded WAL costs).
        #[arg(long)]
        no_fold: bool,
    },
    /// Shows what Reef's codecs do, on a local directory.
    Demo,
    /// Prints a shell completion script (bash, zsh, fish, elvish,
    /// powershell), e.g. `reef completions bash > ~/.local/share/bash-completion/completions/reef`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Prints the man page (roff), e.g. `reef man | man -l -`.
    Man,
}

/// Logs go to stderr (stdout is data): warnings by default, more with
/// `-v`, errors only with `-q`; `RUST_LOG` (tracing's filter syntax), when
/// set, replaces all of that.
fn init_logs(cli: &Cli) {
    use std::io::IsTerminal as _;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            tracing_subscriber::EnvFilter::new(directives)
        }
        _ => {
            let ours = match (cli.quiet, cli.verbose) {
                (true, _) => "error",
                (false, 0) => "warn",
                (false, 1) => "info",
                (false, 2) => "debug",
                _ => "trace",
            };
            let rest = if cli.quiet {
                "error"
            } else if cli.verbose >= 3 {
                "debug"
            } else {
                "warn"
            };
            tracing_subscriber::EnvFilter::new(format!(
                "{rest},reef_engine={ours},reef_compactor={ours},reef_manifest={ours},reef_admin={ours}"
            ))
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// `--grace 10m`: humantime's units, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (write e.g. 90s, 10m, 1h30m, or a number of seconds)"))
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
    init_logs(&cli);
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
    if let Command::Completions { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        let mut out = std::io::stdout().lock();
        clap_complete::generate(shell, &mut command, "reef", &mut out);
        return Ok(());
    }
    if let Command::Man = cli.command {
        let command = <Cli as clap::CommandFactory>::command();
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(command).render(&mut out)?;
        return Ok(());
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
        interval_ms,
        rounds,
        ..
    } = &cli.command
    {
        let ns = namespace_of(&cli.command).context("the namespace is required")?;
        return compactor::run(store, ns, *interval_ms, *rounds);
    }
    if let Command::Bench {
        ns,
        writers,
        duration,
        ops,
        doc_bytes,
        keys,
        key_space,
        reads,
        no_fold,
    } = &cli.command
    {
        validate_namespace(ns)?;
        let workload = bench::Workload {
            namespace: ns.clone(),
            writers: *writers,
            duration: *duration,
            ops: *ops,
            doc_bytes: *doc_bytes,
            keys: *keys,
            key_space: *key_space,
            reads: *reads,
            fold: !*no_fold,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let report = runtime.block_on(bench::run(store, &cli.store, workload))?;
        let mut out = Out::new();
        if cli.json {
            out.line(&compactor::to_json(&report))?;
        } else {
            out.text(bench::render(&report).trim_end())?;
        }
        return out.finish().map_err(Into::into);
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
        // An import is long: it folds and compacts as it goes, in-process.
        let mut options = EngineOptions {
            background: matches!(cli.command, Command::Import { .. }),
            ..EngineOptions::default()
        };
        if let Command::Gc { grace, .. } = &cli.command {
            options.compactor.gc_grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        }
        // Maintenance shows what it has moved so far, on a terminal.
        let maintenance = match &cli.command {
            Command::Flush { ns } => Some(format!("flush {ns}")),
            Command::Compact { ns } => Some(format!("compact {ns}")),
            Command::Gc { ns, .. } => Some(format!("gc {ns}")),
            _ => None,
        };
        let (store, progress) = match maintenance {
            Some(what) => {
                let counting = std::sync::Arc::new(CountingStore::new(store));
                let counted = std::sync::Arc::clone(&counting);
                let progress = output::StoreProgress::start(&what, move || counted.counts());
                (counting as DynStore, Some(progress))
            }
            None => (store, None),
        };
        let engine = Engine::open(store, options).await?;
        let mut out = Out::new().pretty_on_terminal(cli.json);
        let acted = act(&engine, &cli.command, parsed.as_ref(), cli.json, &mut out).await;
        drop(progress);
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
    json: bool,
    out: &mut Out,
) -> Result<()> {
    // Only a write or an import may create a namespace; anything else on
    // a name with no objects is a typo or the wrong store, and says so.
    if let Some(ns) = namespace_of(command)
        && !matches!(command, Command::Write { .. } | Command::Import { .. })
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
        Command::Import {
            ns,
            file,
            id_field,
            id_pointer,
        } => {
            let id = match id_pointer {
                Some(p) => import::IdFrom::Pointer(p.clone()),
                None => import::IdFrom::Field(id_field.clone()),
            };
            import::run(engine, ns, file.as_deref(), &id, out).await?;
            ops::keep_healthy(engine, ns).await;
            Ok(())
        }
        Command::Get { ns, id, at: None } => ops::get(engine, ns, id, out).await,
        Command::Get {
            ns,
            id,
            at: Some(name),
        } => match pins::at(engine, ns, name).await?.get(id).await? {
            Some(doc) => Ok(out.doc(&doc)?),
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
                    ops::scan_snapshot(&pins::at(engine, ns, name).await?, &range, out).await
                }
            }
        }
        Command::Checkpoint { action } => pins::checkpoint(engine, action, out).await,
        Command::Lease { action } => pins::lease(engine, action, out).await,
        Command::Stats { ns } => ops::stats(engine, ns, out).await,
        Command::Namespaces => ops::namespaces(engine, json, out).await,
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
        Command::Bench { .. } => anyhow::bail!("bench opens its own engine"),
        Command::Demo | Command::Completions { .. } | Command::Man => {
            anyhow::bail!("this command runs without an engine")
        }
    }
}

fn namespace_of(command: &Command) -> Option<&str> {
    match command {
        Command::Write { ns, .. }
        | Command::Import { ns, .. }
        | Command::Get { ns, .. }
        | Command::Scan { ns, .. }
        | Command::Stats { ns }
        | Command::Flush { ns }
        | Command::Compact { ns }
        | Command::Gc { ns, .. }
        | Command::Repair { ns, .. }
        | Command::Rebuild { ns, .. }
        | Command::Bench { ns, .. } => Some(ns),
        Command::Compactor { ns, namespace, .. } => ns.as_deref().or(namespace.as_deref()),
        Command::Checkpoint { action } => Some(action.namespace()),
        Command::Lease { action } => Some(action.namespace()),
        Command::Verify { ns, .. } => ns.as_deref(),
        Command::Namespaces
        | Command::Demo
        | Command::Inspect { .. }
        | Command::Completions { .. }
        | Command::Man => None,
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
