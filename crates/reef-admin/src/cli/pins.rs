//! `reef checkpoint create|list|delete` and `reef lease list|release`: the
//! pins GC respects, managed by hand; and the checkpoint a `get`/`scan
//! --at` reads. A checkpoint covers every write acknowledged before it was
//! taken: `create` folds first, then pins the manifest that fold left.

use anyhow::Result;
use reef_engine::{Engine, Snapshot};
use reef_manifest::{Layout, ManifestStore, Pins, SystemClock, SystemRng};

use super::compactor::to_json;
use super::exit::{InputError, NotFound};
use super::output::Out;

/// What to do with checkpoints.
#[derive(clap::Subcommand, Debug)]
pub enum CheckpointAction {
    /// Folds what is unfolded, then pins the resulting manifest under
    /// `name`, durably, until deleted.
    Create {
        /// The namespace.
        ns: String,
        /// The checkpoint's name.
        name: String,
    },
    /// Lists the namespace's checkpoints, one JSON object per line.
    List {
        /// The namespace.
        ns: String,
    },
    /// Deletes a checkpoint (GC may then collect what only it pinned).
    Delete {
        /// The namespace.
        ns: String,
        /// The checkpoint's name.
        name: String,
    },
}

/// What to do with leases.
#[derive(clap::Subcommand, Debug)]
pub enum LeaseAction {
    /// Lists the namespace's leases (snapshots being read), live or
    /// expired, one JSON object per line.
    List {
        /// The namespace.
        ns: String,
    },
    /// Releases a lease by id (its reader's snapshot is then unprotected).
    Release {
        /// The namespace.
        ns: String,
        /// The lease id, as `lease list` prints it.
        id: String,
    },
}

impl CheckpointAction {
    /// The namespace it is about.
    pub fn namespace(&self) -> &str {
        match self {
            CheckpointAction::Create { ns, .. }
            | CheckpointAction::List { ns }
            | CheckpointAction::Delete { ns, .. } => ns,
        }
    }
}

impl LeaseAction {
    /// The namespace it is about.
    pub fn namespace(&self) -> &str {
        match self {
            LeaseAction::List { ns } | LeaseAction::Release { ns, .. } => ns,
        }
    }
}

fn pins(engine: &Engine, ns: &str) -> Result<Pins> {
    Ok(Pins::new(
        engine.store(),
        Layout::new(ns)?,
        std::sync::Arc::new(SystemClock),
        std::sync::Arc::new(SystemRng::new()),
    ))
}

/// `reef checkpoint ...`.
pub async fn checkpoint(engine: &Engine, action: &CheckpointAction, out: &mut Out) -> Result<()> {
    let ns = action.namespace();
    let p = pins(engine, ns)?;
    match action {
        CheckpointAction::Create { name, .. } => {
            reef_manifest::layout::validate_checkpoint_name(name)?;
            engine.flush(ns).await?;
            let manifests = ManifestStore::new(engine.store(), Layout::new(ns)?);
            let current = manifests.load_current().await?.unwrap_or_default();
            if current.version == 0 {
                return Err(
                    InputError(format!("namespace {ns:?} has no data to checkpoint yet")).into(),
                );
            }
            let c = p.create_checkpoint(name, current.version).await?;
            #[derive(serde::Serialize)]
            struct Created<'a> {
                namespace: &'a str,
                #[serde(flatten)]
                checkpoint: &'a reef_format::Checkpoint,
                last_version: u64,
            }
            out.line(&to_json(&Created {
                namespace: ns,
                checkpoint: &c,
                last_version: current.last_version,
            }))?;
        }
        CheckpointAction::List { .. } => {
            for c in p.checkpoints().await? {
                out.line(&to_json(&c))?;
            }
        }
        CheckpointAction::Delete { name, .. } => {
            if !p.checkpoints().await?.iter().any(|c| &c.name == name) {
                return Err(NotFound(format!("namespace {ns}: no checkpoint {name:?}")).into());
            }
            p.delete_checkpoint(name).await?;
            #[derive(serde::Serialize)]
            struct Deleted<'a> {
                namespace: &'a str,
                deleted: &'a str,
            }
            out.line(&to_json(&Deleted {
                namespace: ns,
                deleted: name,
            }))?;
        }
    }
    Ok(())
}

/// `reef lease ...`.
pub async fn lease(engine: &Engine, action: &LeaseAction, out: &mut Out) -> Result<()> {
    let ns = action.namespace();
    let p = pins(engine, ns)?;
    let now = reef_manifest::Clock::now_ms(&SystemClock);
    match action {
        LeaseAction::List { .. } => {
            #[derive(serde::Serialize)]
            struct Listed<'a> {
                id: &'a str,
                #[serde(flatten)]
                lease: &'a reef_format::Lease,
                expired: bool,
            }
            for (id, lease) in p.leases().await? {
                out.line(&to_json(&Listed {
                    id: &id,
                    lease: &lease,
                    expired: lease.expires_at_ms <= now,
                }))?;
            }
        }
        LeaseAction::Release { id, .. } => {
            if !p.leases().await?.iter().any(|(i, _)| i == id) {
                return Err(NotFound(format!("namespace {ns}: no lease {id:?}")).into());
            }
            let key = Layout::new(ns)?.lease_key(id);
            engine.store().delete(&key).await?;
            #[derive(serde::Serialize)]
            struct Released<'a> {
                namespace: &'a str,
                released: &'a str,
            }
            out.line(&to_json(&Released {
                namespace: ns,
                released: id,
            }))?;
        }
    }
    Ok(())
}

/// The snapshot `get`/`scan --at <name>` read; a missing checkpoint is
/// exit 1.
pub async fn at(engine: &Engine, ns: &str, name: &str) -> Result<Snapshot> {
    reef_manifest::layout::validate_checkpoint_name(name)?;
    match engine.checkpoint_snapshot(ns, name).await {
        Err(reef_engine::Error::Store(reef_manifest::Error::NotFound { .. })) => {
            Err(NotFound(format!("namespace {ns}: no checkpoint {name:?}")).into())
        }
        other => Ok(other?),
    }
}
