//! Leases (TTL pins of a manifest version, held by readers) and checkpoints
//! (named, durable pins) of one namespace, and the pins GC must respect.
//!
//! A lease object is created with put-if-absent under a fresh id, renewed
//! by CAS on its tag (so a lease that GC has reclaimed cannot be silently
//! resurrected by a late renewal), and deleted on release. GC treats a
//! lease as live until `expires_at_ms + LEASE_CLOCK_SKEW_MS` by its own
//! clock: the margin covers clocks that disagree between the reader that
//! took the lease and the process that collects garbage. A reader that
//! outlives its lease (paused, or its renewals failing) loses its snapshot:
//! reads then fail with a clear error, never return wrong data.
//!
//! A new pin is placed first and checked second: after the lease or
//! checkpoint object exists, the current manifest's `gc_floor` must not be
//! above the pinned version. GC raises the floor by a commit *before* it
//! lists pins, so either the pin was placed before that listing (GC sees
//! it and keeps the version) or the check sees the raised floor (the pin
//! is withdrawn and refused). No clock is involved.
//!
//! Invariant: `pins` returns every manifest version that a live lease or
//! any checkpoint can still read; GC never deletes an object one of them
//! reaches.

use bytes::Bytes;
use reef_format::{Checkpoint, Lease, Manifest};
use std::sync::Arc;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::layout::{Layout, validate_checkpoint_name};
use crate::manifests::ManifestStore;
use crate::rng::Rng;
use crate::store::{DynStore, PutOutcome, Tag, list_all};

/// How far apart two processes' clocks may be; leases get this much grace.
pub const LEASE_CLOCK_SKEW_MS: u64 = 30_000;

/// A lease this process holds.
#[derive(Clone, Debug)]
pub struct LeaseHandle {
    /// The lease id (in the object key).
    pub id: String,
    /// The lease as last written.
    pub lease: Lease,
    tag: Tag,
}

/// Leases and checkpoints of one namespace.
#[derive(Clone, Debug)]
pub struct Pins {
    store: DynStore,
    layout: Layout,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
    sabotage: crate::Sabotage,
}

/// What GC must keep: versions pinned by live leases and by checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PinSet {
    /// Pinned manifest versions, ascending, without duplicates.
    pub versions: Vec<u64>,
    /// Leases that have expired (past the skew margin): GC may delete them.
    pub expired_leases: Vec<String>,
}

impl PinSet {
    /// The oldest pinned version, if any.
    pub fn low_watermark(&self) -> Option<u64> {
        self.versions.first().copied()
    }
}

impl Pins {
    /// Leases and checkpoints of the namespace `layout` describes; lease
    /// ids are drawn from `rng`.
    pub fn new(store: DynStore, layout: Layout, clock: Arc<dyn Clock>, rng: Arc<dyn Rng>) -> Pins {
        Pins {
            store,
            layout,
            clock,
            rng,
            sabotage: crate::Sabotage::default(),
        }
    }

    /// Test-only: safety rules switched off (`skip_pin_check`).
    #[doc(hidden)]
    pub fn with_sabotage(mut self, sabotage: crate::Sabotage) -> Pins {
        self.sabotage = sabotage;
        self
    }

    /// Takes a lease on `manifest_version` for `ttl_ms`. Fails with
    /// `VersionCollected` (and leaves no lease) if that version is below
    /// the GC floor.
    pub async fn acquire(
        &self,
        holder: &str,
        manifest_version: u64,
        ttl_ms: u64,
    ) -> Result<LeaseHandle> {
        let now = self.clock.now_ms();
        let lease = Lease {
            holder: holder.to_owned(),
            manifest_version,
            renewed_at_ms: now,
            expires_at_ms: now.saturating_add(ttl_ms),
        };
        let bytes = Bytes::from(lease.encode()?);
        loop {
            // Random; the put-if-absent settles a collision.
            let id = format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64());
            let key = self.layout.lease_key(&id);
            if let PutOutcome::Written(tag) = self.store.put_if_absent(&key, bytes.clone()).await? {
                if let Err(e) = self.check_retained(manifest_version).await {
                    // Best effort: a leftover expires like any other lease.
                    let _ = self.store.delete(&key).await;
                    return Err(e);
                }
                return Ok(LeaseHandle { id, lease, tag });
            }
        }
    }

    /// Extends a lease by `ttl_ms` from now. Fails with `LeaseGone` if it
    /// was released or reclaimed; then the snapshot is no longer pinned.
    pub async fn renew(&self, handle: &mut LeaseHandle, ttl_ms: u64) -> Result<()> {
        let now = self.clock.now_ms();
        let gone = || Error::LeaseGone {
            namespace: self.layout.namespace().to_owned(),
            id: handle.id.clone(),
        };
        // An expired lease may already be judged collectable by a GC: it
        // is not revived, even if its object is still there.
        if now >= handle.lease.expires_at_ms {
            return Err(gone());
        }
        let lease = Lease {
            renewed_at_ms: now,
            expires_at_ms: now.saturating_add(ttl_ms),
            ..handle.lease.clone()
        };
        let key = self.layout.lease_key(&handle.id);
        let bytes = Bytes::from(lease.encode()?);
        #[cfg(all(test, loom))]
        if crate::planted("renew-unconditionally") {
            // Planted bug: a renewal that does not condition on the tag
            // brings a released (or reclaimed) lease back.
            self.store.put(&key, bytes.clone()).await?;
            handle.lease = lease;
            return Ok(());
        }
        let tag = match self
            .store
            .put_if_match(&key, bytes.clone(), &handle.tag)
            .await?
        {
            PutOutcome::Written(tag) => tag,
            // Our earlier attempt landed and only its response was lost.
            PutOutcome::ConditionFailed => match self.store.get(&key).await? {
                Some(obj) if obj.bytes == bytes => obj.tag,
                _ => return Err(gone()),
            },
        };
        handle.lease = lease;
        handle.tag = tag;
        Ok(())
    }

    /// Releases a lease.
    pub async fn release(&self, handle: LeaseHandle) -> Result<()> {
        self.store.delete(&self.layout.lease_key(&handle.id)).await
    }

    /// Every lease object, live or not, by id.
    pub async fn leases(&self) -> Result<Vec<(String, Lease)>> {
        let mut out = Vec::new();
        for o in list_all(self.store.as_ref(), &self.layout.lease_prefix()).await? {
            let Some(id) = self.layout.parse_lease_key(&o.key) else {
                continue;
            };
            // A lease released between LIST and GET is simply gone.
            if let Some(obj) = self.store.get(&o.key).await? {
                out.push((id, Lease::decode(&obj.bytes, &o.key)?));
            }
        }
        Ok(out)
    }

    /// Creates a checkpoint of `manifest_version`.
    pub async fn create_checkpoint(&self, name: &str, manifest_version: u64) -> Result<Checkpoint> {
        validate_checkpoint_name(name)?;
        let ckpt = Checkpoint {
            name: name.to_owned(),
            manifest_version,
            created_at_ms: self.clock.now_ms(),
        };
        let key = self.layout.checkpoint_key(name);
        let bytes = Bytes::from(ckpt.encode()?);
        let written = match self.store.put_if_absent(&key, bytes.clone()).await? {
            PutOutcome::Written(_) => true,
            // Our own earlier attempt whose response was lost, or another
            // creator's identical checkpoint (same name, version and
            // millisecond): either way one with these bytes exists.
            PutOutcome::ConditionFailed
                if self
                    .store
                    .get(&key)
                    .await?
                    .is_some_and(|o| o.bytes == bytes) =>
            {
                false
            }
            PutOutcome::ConditionFailed => {
                return Err(Error::CheckpointExists {
                    namespace: self.layout.namespace().to_owned(),
                    name: name.to_owned(),
                });
            }
        };
        if let Err(e) = self.check_retained(manifest_version).await {
            // Withdraw only what this call wrote: identical bytes may be
            // another creator's acknowledged checkpoint (found in review).
            // A leftover of ours pins a collected version: it pins nothing.
            if written {
                self.store.delete(&key).await?;
            }
            return Err(e);
        }
        Ok(ckpt)
    }

    /// Checks, after a pin on `version` was placed, that GC cannot have
    /// decided to collect it: the current manifest's floor is not above it.
    async fn check_retained(&self, version: u64) -> Result<()> {
        if self.sabotage.skip_pin_check {
            return Ok(());
        }
        let manifests = ManifestStore::new(Arc::clone(&self.store), self.layout.clone());
        let floor = manifests.load_current().await?.map_or(0, |m| m.gc_floor);
        if version < floor {
            return Err(Error::VersionCollected {
                namespace: self.layout.namespace().to_owned(),
                version,
                floor,
            });
        }
        Ok(())
    }

    /// Every checkpoint, by name order.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let mut out = Vec::new();
        for o in list_all(self.store.as_ref(), &self.layout.checkpoint_prefix()).await? {
            if self.layout.parse_checkpoint_key(&o.key).is_none() {
                continue;
            }
            if let Some(obj) = self.store.get(&o.key).await? {
                out.push(Checkpoint::decode(&obj.bytes, &o.key)?);
            }
        }
        Ok(out)
    }

    /// Deletes a checkpoint (succeeds if it does not exist).
    pub async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        validate_checkpoint_name(name)?;
        self.store.delete(&self.layout.checkpoint_key(name)).await
    }

    /// The manifest a checkpoint pins, to open it read-only as a snapshot.
    pub async fn open_checkpoint(&self, name: &str, manifests: &ManifestStore) -> Result<Manifest> {
        validate_checkpoint_name(name)?;
        let key = self.layout.checkpoint_key(name);
        let obj = self
            .store
            .get(&key)
            .await?
            .ok_or_else(|| Error::NotFound { key: key.clone() })?;
        let ckpt = Checkpoint::decode(&obj.bytes, &key)?;
        manifests
            .load(ckpt.manifest_version)
            .await?
            .ok_or_else(|| Error::Inconsistent {
                namespace: self.layout.namespace().to_owned(),
                reason: format!(
                    "checkpoint {name:?} pins manifest {}, which is gone",
                    ckpt.manifest_version
                ),
            })
    }

    /// The versions GC must keep now, and the leases it may reclaim.
    pub async fn pins(&self) -> Result<PinSet> {
        let now = self.clock.now_ms();
        let mut set = PinSet::default();
        for (id, lease) in self.leases().await? {
            if lease.expires_at_ms.saturating_add(LEASE_CLOCK_SKEW_MS) > now {
                set.versions.push(lease.manifest_version);
            } else {
                set.expired_leases.push(id);
            }
        }
        set.versions
            .extend(self.checkpoints().await?.iter().map(|c| c.manifest_version));
        set.versions.sort_unstable();
        set.versions.dedup();
        Ok(set)
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::future::block_on;

    use super::*;
    use crate::clock::ManualClock;
    use crate::loom_store::LoomStore;
    use crate::rng::SeededRng;

    /// A snapshot's renewer (two renewals, as its background task makes
    /// them) races the snapshot's drop, which releases the lease. Whatever
    /// the order, once both are done no lease object is left: a renewal
    /// never brings a released lease back, and one that comes after the
    /// release says the lease is gone.
    #[test]
    fn a_released_lease_stays_released() {
        crate::loom_store::model(|| {
            let store: DynStore = Arc::new(LoomStore::default());
            let pins = Pins::new(
                store,
                Layout::new("n").unwrap(),
                Arc::new(ManualClock::new(1_000)),
                Arc::new(SeededRng::new(7)),
            );
            let handle = block_on(pins.acquire("reader", 0, 60_000)).unwrap();
            let renewer = {
                let (pins, mut handle) = (pins.clone(), handle.clone());
                crate::loom_store::spawn(move || {
                    for _ in 0..2 {
                        if block_on(pins.renew(&mut handle, 60_000)).is_err() {
                            return;
                        }
                    }
                })
            };
            block_on(pins.release(handle)).unwrap();
            renewer.join().unwrap();
            let left = block_on(pins.leases()).unwrap();
            assert!(left.is_empty(), "a released lease came back: {left:?}");
        });
    }
}
