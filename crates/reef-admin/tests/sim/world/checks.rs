//! What finished operations report, checked against the model, and the
//! checks on the bucket itself after every change.

use super::*;

impl World {
    /// Takes in what finished operations report, checking each.
    pub(super) fn collect(&mut self) -> Result<(), String> {
        let finished: Vec<Finished> = std::mem::take(&mut *self.done.lock().unwrap());
        for f in finished {
            let a = &mut self.actors[f.actor];
            a.inflight.retain(|(op, _)| *op != f.op);
            if f.incarnation != a.incarnation {
                continue; // the process died before it could tell anyone
            }
            self.take(f.actor, f.done)?;
        }
        Ok(())
    }

    pub(super) fn take(&mut self, actor: usize, done: Done) -> Result<(), String> {
        match done {
            Done::Write {
                number,
                retry_of,
                res,
            } => match res {
                Ok(r) => {
                    self.changed = true;
                    self.note(format!(
                        "{} a{actor} #{number} acknowledged {r:?}",
                        self.step
                    ));
                    match retry_of {
                        Some(n) => {
                            self.count("replay-checked");
                            self.model.check_replay(n, &r)
                        }
                        None => self.model.ack(number, &r),
                    }
                }
                Err(e) if is_bug(e.kind()) => Err(format!("write #{number} failed: {e}")),
                Err(e) => {
                    self.note(format!("{} a{actor} #{number} failed: {e}", self.step));
                    Ok(())
                }
            },
            Done::Read { acks, res } => match res {
                Ok(docs) => {
                    self.count("read-checked");
                    let view = view_of(&docs)?;
                    self.model
                        .check_view(&view, &self.model.ack_log[..acks], u64::MAX)
                        .map_err(|v| format!("a read after refresh: {v}"))
                }
                Err(e) if is_bug(e.kind()) => Err(format!("read failed: {e}")),
                Err(_) => Ok(()),
            },
            Done::SnapTaken { taken_ms, res } => match res {
                Ok((snapshot, docs, pinned_present)) => {
                    self.count("snapshot-checked");
                    if !pinned_present && self.lease_must_be_live(taken_ms) {
                        return Err(format!(
                            "a snapshot's lease (taken at {taken_ms}) pins manifest {}, which is gone",
                            snapshot.manifest_version()
                        ));
                    }
                    let view = view_of(&docs)?;
                    self.model
                        .check_view(&view, &self.model.ack_log, snapshot.version())
                        .map_err(|v| format!("snapshot at {}: {v}", snapshot.version()))?;
                    self.actors[actor].snapshots.push(Held {
                        snapshot,
                        first: view,
                        taken_ms,
                    });
                    Ok(())
                }
                Err(e) if is_bug(e.kind()) => Err(format!("snapshot failed: {e}")),
                Err(e) => self.expired_too_early(&e, taken_ms),
            },
            Done::SnapRead { index, res } => {
                let Some(held) = self.actors[actor].snapshots.get(index) else {
                    return Ok(()); // dropped meanwhile
                };
                let (at, first, taken_ms) =
                    (held.snapshot.version(), held.first.clone(), held.taken_ms);
                match res {
                    Ok(docs) => {
                        self.count("snapshot-reread");
                        let view = view_of(&docs)?;
                        if view != first {
                            return Err(format!("snapshot at {at} read {view:?}, first {first:?}"));
                        }
                        Ok(())
                    }
                    Err(e) if is_bug(e.kind()) => Err(format!("snapshot reread failed: {e}")),
                    Err(e) => self.expired_too_early(&e, taken_ms),
                }
            }
            Done::Engine { what, res } => match res {
                Err(e) if is_bug(e.kind()) => Err(format!("engine {what} failed: {e}")),
                _ => Ok(()),
            },
            Done::Checkpoint { name, res } => match res {
                Ok(Some(v)) => {
                    self.count("checkpoint-acknowledged");
                    self.checkpoints.insert(name, v);
                    Ok(())
                }
                Ok(None) | Err((true, _)) => Ok(()),
                Err((false, e)) => Err(format!("checkpoint {name} failed: {e}")),
            },
            Done::Standalone { what, res } => match res {
                Err((false, e)) => Err(format!("{what} failed: {e}")),
                Ok(Some(kind)) => {
                    self.count(kind);
                    Ok(())
                }
                _ => Ok(()),
            },
        }
    }

    /// A snapshot may expire (its holder paused past the lease, or some
    /// clock ran far ahead), but not while no clock anywhere can have
    /// passed its lease's expiry plus the skew margin GC allows.
    pub(super) fn expired_too_early(
        &mut self,
        e: &reef_engine::Error,
        taken_ms: u64,
    ) -> Result<(), String> {
        if !matches!(e, reef_engine::Error::SnapshotExpired { .. }) {
            return Ok(());
        }
        self.count("snapshot-expired");
        if self.lease_must_be_live(taken_ms) {
            return Err(format!(
                "a snapshot expired ({e}) while its lease was live (taken at {taken_ms})"
            ));
        }
        Ok(())
    }

    /// Whether no clock anywhere can have passed the expiry (plus GC's
    /// skew margin) of a lease taken at `taken_ms` by its holder's clock.
    pub(super) fn lease_must_be_live(&self, taken_ms: u64) -> bool {
        let ttl = self.engine_options(0).snapshot_lease_ttl_ms;
        let latest = self
            .actors
            .iter()
            .map(|a| a.clock.now_ms())
            .max()
            .unwrap_or(0);
        latest < taken_ms + ttl + reef_manifest::LEASE_CLOCK_SKEW_MS
    }

    /// What must hold in the bucket itself after every change: the current
    /// manifest's accounts and objects, every checkpoint's objects, and the
    /// namespace as a freshly opened reader sees it.
    pub(super) async fn check_bucket(&mut self) -> Result<(), String> {
        let truth: DynStore = Arc::new(self.bucket.truth.clone());
        let layout = Layout::new(NS).unwrap();
        let manifests = ManifestStore::new(Arc::clone(&truth), layout.clone());
        let current = manifests
            .load_current()
            .await
            .map_err(|e| format!("loading the current manifest: {e}"))?;
        if let Some(m) = &current {
            m.check_accounting(&layout.manifest_key(m.version))
                .map_err(|e| e.to_string())?;
            present(&truth, &layout, m, "the current manifest").await?;
        }
        let pins = Pins::new(
            Arc::clone(&truth),
            layout.clone(),
            self.actors[0].clock.clone(),
            self.ids.clone(),
        );
        // Every acknowledged checkpoint (not deleted or re-created since)
        // is still there, with its manifest and segments. One whose
        // creation was never acknowledged may be a stray (a put that
        // landed late); it pins nothing.
        let found = pins.checkpoints().await.map_err(|e| e.to_string())?;
        for (name, &version) in &self.checkpoints {
            if !found
                .iter()
                .any(|c| c.name == *name && c.manifest_version == version)
            {
                return Err(format!(
                    "acknowledged checkpoint {name} (version {version}) is gone"
                ));
            }
            let m = manifests
                .load(version)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!("checkpoint {name} pins manifest {version}, which is gone")
                })?;
            present(&truth, &layout, &m, &format!("checkpoint {name}")).await?;
        }
        let oracle = Engine::open(
            truth,
            EngineOptions {
                read_only: true,
                background: false,
                clock: Arc::new(SimClock {
                    start: self.actors[0].clock.start,
                    offset_ms: 0,
                    drift_ppm: 0,
                }),
                ..EngineOptions::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        let docs = match oracle.scan(NS, &ScanRange::default()).await {
            Ok(d) => d,
            Err(e) => return Err(format!("a fresh reader cannot scan: {e}")),
        };
        let view = view_of(&docs)?;
        self.count("bucket-checked");
        self.model
            .check_view(&view, &self.model.ack_log, u64::MAX)
            .map_err(|v| format!("a fresh reader: {v}"))
    }
}

pub(super) fn is_bug(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Corrupt | ErrorKind::Internal | ErrorKind::Invalid | ErrorKind::Unsupported
    )
}

pub(super) async fn present(
    truth: &DynStore,
    layout: &Layout,
    m: &reef_format::Manifest,
    what: &str,
) -> Result<(), String> {
    for s in &m.segments {
        let key = layout.segment_key(s.id);
        if truth.head(&key).await.map_err(|e| e.to_string())?.is_none() {
            return Err(format!(
                "{what} (version {}) lists segment {key}, which is gone",
                m.version
            ));
        }
    }
    Ok(())
}
