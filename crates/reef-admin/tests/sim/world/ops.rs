//! The operations actors start: writes (new and idempotent retries),
//! reads after a refresh, snapshots, standalone fold, compaction and GC,
//! and checkpoints.

use super::*;

impl World {
    pub(super) async fn start_op(&mut self) {
        let actor = self.dice.below(self.actors.len() as u64) as usize;
        let limit = if self.actors[actor].role == Role::Writer {
            3
        } else {
            1
        };
        if !self.awake(actor) || self.actors[actor].inflight.len() >= limit {
            return;
        }
        match self.actors[actor].role {
            Role::Writer => self.writer_op(actor).await,
            Role::Reader => self.reader_op(actor).await,
            Role::Compactor => self.compactor_op(actor),
            Role::Gc => self.gc_op(actor),
            Role::Checkpointer => self.checkpoint_op(actor),
        }
    }

    pub(super) async fn writer_op(&mut self, actor: usize) {
        let roll = self.dice.below(100);
        let e = self.engine(actor).await;
        if roll < 55 {
            self.write(actor, e);
        } else if roll < 63 {
            self.retry_idempotent(actor, e);
        } else if roll < 75 {
            self.read(actor, e);
        } else if roll < 80 {
            self.note(format!("{} a{actor} flush", self.step));
            self.spawn(actor, async move {
                Done::Engine {
                    what: "flush",
                    res: e.flush(NS).await.map(|_| ()),
                }
            });
        } else if roll < 84 {
            let force = self.dice.chance(50);
            self.note(format!("{} a{actor} compact force={force}", self.step));
            self.spawn(actor, async move {
                Done::Engine {
                    what: "compact",
                    res: e.compact(NS, force).await.map(|_| ()),
                }
            });
        } else if roll < 87 {
            self.note(format!("{} a{actor} engine gc", self.step));
            self.spawn(actor, async move {
                Done::Engine {
                    what: "gc",
                    res: e.gc(NS).await.map(|_| ()),
                }
            });
        } else {
            self.snapshot_op(actor, e);
        }
    }

    pub(super) async fn reader_op(&mut self, actor: usize) {
        let e = self.engine(actor).await;
        if self.dice.chance(40) {
            self.read(actor, e);
        } else {
            self.snapshot_op(actor, e);
        }
    }

    pub(super) fn write(&mut self, actor: usize, e: Arc<Engine>) {
        let ops: Vec<SimOp> = if self.dice.chance(15) {
            vec![SimOp::Delete {
                id: format!("d{}", self.dice.below(IDS as u64)),
            }]
        } else {
            let n = 1 + self.dice.below(3) as usize;
            let first = self.dice.below(IDS as u64) as usize;
            (0..n)
                .map(|i| SimOp::Upsert {
                    id: format!("d{}", (first + i) % IDS),
                    tag: self.new_tag(),
                })
                .collect()
        };
        let key = self
            .dice
            .chance(25)
            .then(|| format!("k{}", self.model.requests.len()));
        let number = self.model.send(ops, key);
        let request = to_request(
            &self.model.requests[number].ops,
            &self.model.requests[number].idempotency_key,
        );
        self.note(format!(
            "{} a{actor} write #{number} {:?}",
            self.step, self.model.requests[number].ops
        ));
        self.spawn(actor, async move {
            Done::Write {
                number,
                retry_of: None,
                res: e.write(NS, request).await,
            }
        });
    }

    pub(super) fn retry_idempotent(&mut self, actor: usize, e: Arc<Engine>) {
        let keyed: Vec<usize> = self
            .model
            .acked
            .keys()
            .copied()
            .filter(|n| self.model.requests[*n].idempotency_key.is_some())
            .collect();
        if keyed.is_empty() {
            return;
        }
        let n = keyed[self.dice.below(keyed.len() as u64) as usize];
        let sent = &self.model.requests[n];
        let request = to_request(&sent.ops, &sent.idempotency_key);
        self.note(format!("{} a{actor} retry #{n}", self.step));
        self.count("idempotent-retry");
        self.spawn(actor, async move {
            Done::Write {
                number: n,
                retry_of: Some(n),
                res: e.write(NS, request).await,
            }
        });
    }

    pub(super) fn read(&mut self, actor: usize, e: Arc<Engine>) {
        let acks = self.model.ack_log.len();
        self.note(format!("{} a{actor} refresh+scan", self.step));
        self.spawn(actor, async move {
            let res = async {
                e.refresh(NS).await?;
                e.scan(NS, &ScanRange::default()).await
            }
            .await;
            Done::Read { acks, res }
        });
    }

    pub(super) fn snapshot_op(&mut self, actor: usize, e: Arc<Engine>) {
        let held = self.actors[actor].snapshots.len();
        let roll = self.dice.below(100);
        if held > 0 && roll < 50 {
            let index = self.dice.below(held as u64) as usize;
            let snap = self.actors[actor].snapshots[index].snapshot.clone();
            self.note(format!("{} a{actor} reread snapshot {index}", self.step));
            self.spawn(actor, async move {
                Done::SnapRead {
                    index,
                    res: snap.scan(&ScanRange::default()).await,
                }
            });
        } else if held > 0 && roll < 65 {
            let index = self.dice.below(held as u64) as usize;
            self.actors[actor].snapshots.remove(index);
            self.note(format!("{} a{actor} drop snapshot {index}", self.step));
        } else if held < 3 {
            self.note(format!("{} a{actor} take snapshot", self.step));
            let taken_ms = self.actors[actor].clock.now_ms();
            let truth = self.bucket.truth.clone();
            self.spawn(actor, async move {
                let res = async {
                    let s = e.snapshot(NS).await?;
                    let docs = s.scan(&ScanRange::default()).await?;
                    let key = Layout::new(NS).unwrap().manifest_key(s.manifest_version());
                    let present =
                        s.manifest_version() == 0 || matches!(truth.head(&key).await, Ok(Some(_)));
                    Ok((s, docs, present))
                }
                .await;
                Done::SnapTaken { taken_ms, res }
            });
        }
    }

    pub(super) fn compactor_op(&mut self, actor: usize) {
        let (store, opts) = (self.retrying_store(actor), self.compactor_options(actor));
        let layout = Layout::new(NS).unwrap();
        if self.dice.chance(50) {
            self.note(format!("{} a{actor} fold", self.step));
            self.spawn(actor, async move {
                let res = reef_compactor::fold(&store, &layout, &opts, None).await;
                Done::Standalone {
                    what: "fold",
                    res: res
                        .map(|_| None)
                        .map_err(|e| (e.is_transient(), e.to_string())),
                }
            });
        } else {
            let force = self.dice.chance(50);
            self.note(format!("{} a{actor} compact force={force}", self.step));
            self.spawn(actor, async move {
                let res = reef_compactor::compact(&store, &layout, &opts, force).await;
                Done::Standalone {
                    what: "compact",
                    res: res
                        .map(|_| None)
                        .map_err(|e| (e.is_transient(), e.to_string())),
                }
            });
        }
    }

    pub(super) fn gc_op(&mut self, actor: usize) {
        let (store, opts) = (self.retrying_store(actor), self.compactor_options(actor));
        let layout = Layout::new(NS).unwrap();
        self.note(format!(
            "{} a{actor} gc grace={}ms",
            self.step, opts.gc_grace_ms
        ));
        self.spawn(actor, async move {
            let res = reef_compactor::gc(&store, &layout, &opts).await;
            Done::Standalone {
                what: "gc",
                res: res
                    .map(|r| {
                        if r.segments > 0 {
                            Some("gc-collected-segments")
                        } else if r.floor_raised_by.is_some() {
                            Some("gc-raised-floor")
                        } else {
                            None
                        }
                    })
                    .map_err(|e| (e.is_transient(), e.to_string())),
            }
        });
    }

    pub(super) fn checkpoint_op(&mut self, actor: usize) {
        let store = self.retrying_store(actor);
        let layout = Layout::new(NS).unwrap();
        let pins = Pins::new(
            Arc::clone(&store),
            layout.clone(),
            self.actors[actor].clock.clone(),
            self.ids.clone(),
        );
        if self.dice.chance(60) {
            let name = format!("c{}", self.next_checkpoint % 3);
            self.next_checkpoint += 1;
            self.checkpoints.remove(&name);
            self.note(format!("{} a{actor} checkpoint {name}", self.step));
            self.spawn(actor, async move {
                let res = async {
                    let manifests = ManifestStore::new(store, layout);
                    let Some(m) = manifests.load_current().await? else {
                        return Ok(None);
                    };
                    let _ = pins.delete_checkpoint(&name).await;
                    pins.create_checkpoint(&name, m.version)
                        .await
                        .map(|c| Some(c.manifest_version))
                }
                .await;
                Done::Checkpoint {
                    name,
                    // "Exists": another creation of the name got there
                    // first (a crashed incarnation's put that landed late),
                    // a truthful refusal (found by the soak, seed 5773).
                    res: res.map_err(|e: reef_manifest::Error| {
                        let expected = e.is_transient()
                            || is_collected(&e)
                            || matches!(e, reef_manifest::Error::CheckpointExists { .. });
                        (expected, e.to_string())
                    }),
                }
            });
        } else {
            let name = format!("c{}", self.dice.below(3));
            self.checkpoints.remove(&name);
            self.note(format!("{} a{actor} delete checkpoint {name}", self.step));
            self.spawn(actor, async move {
                Done::Standalone {
                    what: "delete checkpoint",
                    res: pins
                        .delete_checkpoint(&name)
                        .await
                        .map(|()| None)
                        .map_err(|e| (e.is_transient(), e.to_string())),
                }
            });
        }
    }
}

pub(super) fn is_collected(e: &reef_manifest::Error) -> bool {
    matches!(e, reef_manifest::Error::VersionCollected { .. })
}

pub(super) fn to_request(ops: &[SimOp], key: &Option<String>) -> WriteRequest {
    WriteRequest {
        ops: ops
            .iter()
            .map(|op| match op {
                SimOp::Upsert { id, tag } => Op {
                    kind: OpKind::Upsert,
                    id: id.clone(),
                    doc: Some([("t".to_owned(), Value::I64(*tag))].into()),
                    precondition: None,
                },
                SimOp::Delete { id } => Op {
                    kind: OpKind::Delete,
                    id: id.clone(),
                    doc: None,
                    precondition: None,
                },
            })
            .collect(),
        idempotency_key: key.clone(),
    }
}
