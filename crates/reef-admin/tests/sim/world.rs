//! One simulated run: actors, the scheduler's step loop, and the checks
//! after every step.
//!
//! Actors share one namespace through the simulated bucket: two writer
//! engines (either may pause for hours and come back a zombie), a reader
//! with snapshots, a standalone fold/compaction worker, GC with a grace
//! drawn per run, and a checkpoint taker. Each step the scheduler does one
//! thing, drawn from the seed: answer one parked request (and decide its
//! fate), start an operation, land a late request, crash or pause an
//! actor, or move virtual time. Everything runs on one thread with paused
//! tokio time, so one seed gives one run.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reef_compactor::CompactorOptions;
use reef_engine::{Doc, Engine, EngineOptions, ErrorKind, ScanRange, Snapshot, WriteResult};
use reef_format::{Op, OpKind, Value, WriteRequest};
use reef_manifest::store::{DynStore, ObjectStore, RetryingStore};
use reef_manifest::{Clock, Layout, ManifestStore, Pins, Rng, SeededRng};
use tokio::task::JoinHandle;

use crate::model::{Model, SimOp, View, view_of};
use crate::store::{Bucket, Parked, Req, execute, transient};
use crate::{Config, Fault, Knob};

const NS: &str = "sim";
const IDS: usize = 6;
const EPOCH_MS: u64 = 1_700_000_000_000;
const DAY_MS: u64 = 24 * 3_600_000;

/// An actor's clock: virtual time, offset and drifting.
#[derive(Debug)]
struct SimClock {
    start: tokio::time::Instant,
    offset_ms: i64,
    drift_ppm: i64,
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        let t = self.start.elapsed().as_millis() as i64;
        (EPOCH_MS as i64 + t + self.offset_ms + t * self.drift_ppm / 1_000_000).max(0) as u64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Writer,
    Reader,
    Compactor,
    Gc,
    Checkpointer,
}

struct Held {
    snapshot: Snapshot,
    first: View,
    /// The holder's clock just before the snapshot was taken: its lease
    /// expires no earlier than this plus the TTL.
    taken_ms: u64,
}

struct Actor {
    role: Role,
    incarnation: u64,
    clock: Arc<SimClock>,
    engine: Option<Arc<Engine>>,
    inflight: Vec<(u64, JoinHandle<()>)>,
    paused_until: u64,
    snapshots: Vec<Held>,
}

/// What a finished operation reports.
enum Done {
    Write {
        number: usize,
        retry_of: Option<usize>,
        res: reef_engine::Result<WriteResult>,
    },
    Read {
        acks: usize,
        res: reef_engine::Result<Vec<Doc>>,
    },
    SnapTaken {
        taken_ms: u64,
        /// The snapshot, what it read, and whether the manifest it pins
        /// was in the bucket right after.
        res: reef_engine::Result<(Snapshot, Vec<Doc>, bool)>,
    },
    SnapRead {
        index: usize,
        res: reef_engine::Result<Vec<Doc>>,
    },
    Engine {
        what: &'static str,
        res: reef_engine::Result<()>,
    },
    Checkpoint {
        name: String,
        /// The version pinned, if there was a manifest to pin.
        res: Result<Option<u64>, (bool, String)>,
    },
    Standalone {
        what: &'static str,
        /// On success, what to count, if anything.
        res: Result<Option<&'static str>, (bool, String)>,
    },
}

struct Finished {
    actor: usize,
    incarnation: u64,
    op: u64,
    done: Done,
}

type Completions = Arc<Mutex<Vec<Finished>>>;

/// The result of one run.
pub struct Report {
    pub violation: Option<String>,
    pub steps: u64,
    pub trace_hash: u64,
    pub tail: Vec<String>,
    pub counts: BTreeMap<&'static str, u64>,
}

/// The scheduler's own random source (separate from the ids the system
/// draws, so a change in how many ids the engine takes does not reshuffle
/// the schedule).
struct Dice(SeededRng);

impl Dice {
    fn below(&self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.0.next_u64() % n }
    }
    fn chance(&self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub struct World {
    cfg: Config,
    dice: Dice,
    ids: Arc<SeededRng>,
    bucket: Bucket,
    actors: Vec<Actor>,
    model: Model,
    done: Completions,
    late: Vec<Req>,
    step: u64,
    next_op: u64,
    next_tag: i64,
    next_checkpoint: u64,
    trace: Vec<String>,
    hasher: DefaultHasher,
    counts: BTreeMap<&'static str, u64>,
    changed: bool,
    gc_grace_ms: u64,
    /// Checkpoints whose creation was acknowledged (and not deleted since).
    checkpoints: BTreeMap<String, u64>,
}

fn is_bug(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Corrupt | ErrorKind::Internal | ErrorKind::Invalid | ErrorKind::Unsupported
    )
}

impl World {
    pub fn new(cfg: Config) -> World {
        let dice = Dice(SeededRng::new(cfg.seed));
        let ids = Arc::new(SeededRng::new(cfg.seed ^ 0x05ee_d1d5));
        let start = tokio::time::Instant::now();
        let roles = [
            Role::Writer,
            Role::Writer,
            Role::Reader,
            Role::Compactor,
            Role::Gc,
            Role::Checkpointer,
        ];
        let skew = cfg.faults.has(Fault::Skew);
        let actors = roles
            .iter()
            .map(|&role| {
                let (offset_ms, drift_ppm) = if skew {
                    // Mostly within a minute; sometimes hours apart.
                    let span = if dice.chance(10) {
                        4 * 3_600_000
                    } else {
                        60_000
                    };
                    (
                        dice.below(2 * span) as i64 - span as i64,
                        dice.below(20_001) as i64 - 10_000,
                    )
                } else {
                    (0, 0)
                };
                Actor {
                    role,
                    incarnation: 0,
                    clock: Arc::new(SimClock {
                        start,
                        offset_ms,
                        drift_ppm,
                    }),
                    engine: None,
                    inflight: Vec::new(),
                    paused_until: 0,
                    snapshots: Vec::new(),
                }
            })
            .collect();
        let gc_grace_ms = [0, 50, 2_000, 600_000][dice.below(4) as usize];
        World {
            cfg,
            dice,
            ids,
            bucket: Bucket::new(roles.len()),
            actors,
            model: Model::default(),
            done: Completions::default(),
            late: Vec::new(),
            step: 0,
            next_op: 0,
            next_tag: 1,
            next_checkpoint: 0,
            trace: Vec::new(),
            hasher: DefaultHasher::new(),
            counts: BTreeMap::new(),
            changed: false,
            gc_grace_ms,
            checkpoints: BTreeMap::new(),
        }
    }

    fn note(&mut self, line: String) {
        line.hash(&mut self.hasher);
        self.trace.push(line);
        if self.trace.len() > 60 {
            self.trace.remove(0);
        }
    }

    fn count(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_default() += 1;
    }

    fn compactor_options(&self, actor: usize) -> CompactorOptions {
        let mut o = CompactorOptions {
            compaction_l0_trigger: 2 + (actor % 3),
            gc_grace_ms: self.gc_grace_ms,
            idempotency_retention_ms: 365 * DAY_MS,
            clock: self.actors[actor].clock.clone(),
            rng: self.ids.clone(),
            ..CompactorOptions::default()
        };
        o.segment.block_bytes_target = 512;
        o.sabotage = self.cfg.knob.map(Knob::sabotage).unwrap_or_default();
        o
    }

    fn engine_options(&self, actor: usize) -> EngineOptions {
        let background = actor == 1;
        EngineOptions {
            transient_retries_max: 2,
            backoff_base: Duration::from_millis(5),
            backpressure_wait_max: Duration::from_secs(5),
            // The reader caches nothing: every read of its views goes to
            // the bucket, so a view pinned on collected objects shows.
            block_cache_bytes: if actor == 2 { 0 } else { 64 << 10 },
            fold_trigger_bytes: 2 << 10,
            fold_trigger_wal_objects: 3,
            fold_trigger_age: Duration::from_secs(2),
            background,
            snapshot_lease_ttl_ms: 30_000,
            clock: self.actors[actor].clock.clone(),
            rng: self.ids.clone(),
            compactor: self.compactor_options(actor),
            read_only: self.actors[actor].role == Role::Reader,
            ..EngineOptions::default()
        }
    }

    fn store(&self, actor: usize) -> DynStore {
        self.bucket.handle(actor, self.actors[actor].incarnation)
    }

    /// A store for the standalone workers: retries transient faults, as
    /// `reef compactor` does.
    fn retrying_store(&self, actor: usize) -> DynStore {
        Arc::new(RetryingStore::new(
            self.store(actor),
            2,
            Duration::from_millis(5),
        ))
    }

    async fn engine(&mut self, actor: usize) -> Arc<Engine> {
        if let Some(e) = &self.actors[actor].engine {
            return Arc::clone(e);
        }
        let e = Arc::new(
            Engine::open(self.store(actor), self.engine_options(actor))
                .await
                .expect("options are valid"),
        );
        self.actors[actor].engine = Some(Arc::clone(&e));
        e
    }

    fn spawn<F>(&mut self, actor: usize, fut: F)
    where
        F: std::future::Future<Output = Done> + Send + 'static,
    {
        let op = self.next_op;
        self.next_op += 1;
        let (done, incarnation) = (Arc::clone(&self.done), self.actors[actor].incarnation);
        let handle = tokio::spawn(async move {
            let d = fut.await;
            done.lock().unwrap().push(Finished {
                actor,
                incarnation,
                op,
                done: d,
            });
        });
        self.actors[actor].inflight.push((op, handle));
    }

    /// Runs every ready task until nothing moves.
    async fn settle(&self) -> Result<(), String> {
        let probe = || (self.bucket.generation(), self.done.lock().unwrap().len());
        let mut last = probe();
        let mut stable = 0;
        for _ in 0..200_000 {
            tokio::task::yield_now().await;
            let now = probe();
            if now == last {
                stable += 1;
                if stable >= 3 {
                    return Ok(());
                }
            } else {
                stable = 0;
                last = now;
            }
        }
        Err("the system never settled: some task keeps making requests".into())
    }

    /// The whole run.
    pub async fn run(mut self) -> Report {
        let violation = match self.steps().await {
            Ok(()) => self.finish().await.err(),
            Err(v) => Some(v),
        };
        Report {
            violation,
            steps: self.step,
            trace_hash: self.hasher.finish(),
            tail: self.trace,
            counts: self.counts,
        }
    }

    async fn steps(&mut self) -> Result<(), String> {
        while self.step < self.cfg.steps {
            self.step += 1;
            self.changed = false;
            self.one_step().await?;
            self.settle().await?;
            self.collect()?;
            if self.changed {
                self.check_bucket().await?;
            }
        }
        Ok(())
    }

    fn awake(&self, actor: usize) -> bool {
        self.actors[actor].paused_until <= self.step
    }

    async fn one_step(&mut self) -> Result<(), String> {
        let ready: Vec<usize> = {
            let s = self.bucket.shared.lock().unwrap();
            s.parked
                .iter()
                .enumerate()
                .filter(|(_, p)| self.awake(p.actor))
                .map(|(i, _)| i)
                .collect()
        };
        let f = self.cfg.faults;
        let weights = [
            if ready.is_empty() { 0 } else { 60 },
            30,
            if f.has(Fault::LandLate) && !self.late.is_empty() {
                3
            } else {
                0
            },
            if f.has(Fault::Crash) { 1 } else { 0 },
            if f.has(Fault::Pause) { 1 } else { 0 },
            6,
        ];
        let mut roll = self.dice.below(weights.iter().sum());
        let mut action = 0;
        while roll >= weights[action] {
            roll -= weights[action];
            action += 1;
        }
        match action {
            0 => self.release(&ready).await,
            1 => self.start_op().await,
            2 => self.land_late().await,
            3 => self.crash(),
            4 => self.pause(),
            _ => self.pass_time().await,
        }
        Ok(())
    }

    async fn release(&mut self, ready: &[usize]) {
        let pick = if self.cfg.faults.has(Fault::Reorder) {
            ready[self.dice.below(ready.len() as u64) as usize]
        } else {
            ready[0]
        };
        if pick != ready[0] {
            self.count("reorder");
        }
        let f = self.cfg.faults;
        // "What if this process sleeps for an hour right here?": the actor
        // stops just before this request goes out (it stays parked).
        // Most of all between planning a WAL record and putting it (how a
        // writer becomes a stale zombie), and between loading a manifest
        // and reading the WAL after it (how a reader meets a stray record).
        let (actor, pivotal) = {
            let s = self.bucket.shared.lock().unwrap();
            let p = &s.parked[pick];
            let wal = p.req.key().contains("/wal/");
            let pivotal = wal && matches!(p.req, Req::PutIfAbsent(..) | Req::List(..));
            (p.actor, pivotal)
        };
        if f.has(Fault::Pause) && self.dice.chance(if pivotal { 8 } else { 2 }) {
            self.pause_actor(actor);
            return;
        }
        let Parked {
            actor, req, answer, ..
        } = self.bucket.shared.lock().unwrap().parked.remove(pick);

        let r = self.dice.below(100);
        let (fate, reply) = if f.has(Fault::FailBefore) && r < 4 {
            (
                "fail-before",
                Err(transient(&req, "failed before it took effect")),
            )
        } else if f.has(Fault::LoseResponse) && r < 8 && req.mutates() {
            let _ = execute(&self.bucket.truth, &req).await;
            (
                "lose-response",
                Err(transient(&req, "response lost after it took effect")),
            )
        } else if f.has(Fault::LandLate) && r < 11 && may_land_late(&req) {
            self.late.push(req.clone());
            (
                "land-late",
                Err(transient(&req, "timed out; it lands later")),
            )
        } else {
            ("deliver", execute(&self.bucket.truth, &req).await)
        };
        let took_effect = req.mutates() && fate != "fail-before";
        self.changed |= took_effect;
        self.count(fate);
        let summary = brief(&reply);
        self.note(format!(
            "{} a{actor} {} {} {fate}: {summary}",
            self.step,
            req.name(),
            req.key()
        ));
        let _ = answer.send(reply);
        // "What if this process sleeps for an hour right here?": right
        // after a write of its took effect, an actor may stop or die.
        if took_effect && fate == "deliver" {
            // Most of all between committing a manifest and moving HEAD
            // to it: HEAD then lags for as long as the actor sleeps.
            let manifest_put =
                matches!(req, Req::PutIfAbsent(..)) && req.key().contains("/manifest/");
            if f.has(Fault::Pause) && self.dice.chance(if manifest_put { 10 } else { 3 }) {
                self.pause_actor(actor);
            } else if f.has(Fault::Crash) && self.dice.chance(1) {
                self.crash_actor(actor);
            }
        }
    }

    async fn land_late(&mut self) {
        let i = self.dice.below(self.late.len() as u64) as usize;
        let req = self.late.remove(i);
        let r = execute(&self.bucket.truth, &req).await;
        self.changed = true;
        self.count("late-landed");
        self.note(format!(
            "{} late {} {} landed: {:?}",
            self.step,
            req.name(),
            req.key(),
            r.map(|_| ())
        ));
    }

    fn crash(&mut self) {
        let actor = self.dice.below(self.actors.len() as u64) as usize;
        self.crash_actor(actor);
    }

    fn crash_actor(&mut self, actor: usize) {
        let a = &mut self.actors[actor];
        a.incarnation += 1;
        a.engine = None;
        a.snapshots.clear();
        for (_, h) in a.inflight.drain(..) {
            h.abort();
        }
        let incarnation = a.incarnation;
        self.bucket.set_incarnation(actor, incarnation);
        let orphans: Vec<Parked> = {
            let mut s = self.bucket.shared.lock().unwrap();
            let (mine, rest) = s.parked.drain(..).partition(|p| p.actor == actor);
            s.parked = rest;
            mine
        };
        for p in orphans {
            if may_land_late(&p.req) && self.cfg.faults.has(Fault::LandLate) && self.dice.chance(50)
            {
                self.late.push(p.req);
            }
        }
        self.count("crash");
        self.note(format!(
            "{} crash a{actor} -> incarnation {incarnation}",
            self.step
        ));
    }

    fn pause(&mut self) {
        let actor = self.dice.below(self.actors.len() as u64) as usize;
        self.pause_actor(actor);
    }

    fn pause_actor(&mut self, actor: usize) {
        let steps = 20 + self.dice.below(300);
        self.actors[actor].paused_until = self.step + steps;
        self.count("pause");
        self.note(format!("{} pause a{actor} for {steps} steps", self.step));
    }

    async fn pass_time(&mut self) {
        let ms = if self.cfg.faults.has(Fault::TimeJump) && self.dice.chance(5) {
            self.count("time-jump");
            3_600_000 + self.dice.below(3 * 3_600_000)
        } else {
            1 + self.dice.below(2_000)
        };
        tokio::time::advance(Duration::from_millis(ms)).await;
        self.note(format!("{} time +{ms}ms", self.step));
    }

    fn new_tag(&mut self) -> i64 {
        self.next_tag += 1;
        self.next_tag
    }

    async fn start_op(&mut self) {
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

    async fn writer_op(&mut self, actor: usize) {
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

    async fn reader_op(&mut self, actor: usize) {
        let e = self.engine(actor).await;
        if self.dice.chance(40) {
            self.read(actor, e);
        } else {
            self.snapshot_op(actor, e);
        }
    }

    fn write(&mut self, actor: usize, e: Arc<Engine>) {
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

    fn retry_idempotent(&mut self, actor: usize, e: Arc<Engine>) {
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

    fn read(&mut self, actor: usize, e: Arc<Engine>) {
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

    fn snapshot_op(&mut self, actor: usize, e: Arc<Engine>) {
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

    fn compactor_op(&mut self, actor: usize) {
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

    fn gc_op(&mut self, actor: usize) {
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

    fn checkpoint_op(&mut self, actor: usize) {
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

    /// Takes in what finished operations report, checking each.
    fn collect(&mut self) -> Result<(), String> {
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

    fn take(&mut self, actor: usize, done: Done) -> Result<(), String> {
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
    fn expired_too_early(&mut self, e: &reef_engine::Error, taken_ms: u64) -> Result<(), String> {
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
    fn lease_must_be_live(&self, taken_ms: u64) -> bool {
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
    async fn check_bucket(&mut self) -> Result<(), String> {
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

    /// Lets every operation finish without faults, then folds, compacts
    /// and collects everything (grace 0) and checks once more.
    async fn finish(&mut self) -> Result<(), String> {
        for a in &mut self.actors {
            a.paused_until = 0;
        }
        for _ in 0..5_000 {
            if self.actors.iter().all(|a| a.inflight.is_empty()) {
                break;
            }
            let next = {
                let mut s = self.bucket.shared.lock().unwrap();
                (!s.parked.is_empty()).then(|| s.parked.remove(0))
            };
            if let Some(p) = next {
                let r = execute(&self.bucket.truth, &p.req).await;
                self.note(format!(
                    "{} quiesce a{} {} {}: {}",
                    self.step,
                    p.actor,
                    p.req.name(),
                    p.req.key(),
                    brief(&r)
                ));
                let _ = p.answer.send(r);
            } else {
                tokio::time::advance(Duration::from_millis(20)).await;
            }
            self.settle().await?;
            self.collect()?;
        }
        for a in &mut self.actors {
            a.snapshots.clear();
            a.engine = None;
        }
        let truth: DynStore = Arc::new(self.bucket.truth.clone());
        let layout = Layout::new(NS).unwrap();
        let mut opts = self.compactor_options(4);
        opts.gc_grace_ms = 0;
        let maintain = async {
            let f = reef_compactor::fold(&truth, &layout, &opts, None).await?;
            let c = reef_compactor::compact(&truth, &layout, &opts, true).await?;
            tokio::time::advance(Duration::from_secs(3600)).await;
            let g = reef_compactor::gc(&truth, &layout, &opts).await?;
            Ok::<_, reef_compactor::Error>(format!("{f:?} {c:?} {g:?}"))
        };
        let reports = maintain
            .await
            .map_err(|e| format!("final maintenance failed: {e}"))?;
        self.note(format!(
            "{} final fold, compaction and gc: {reports}",
            self.step
        ));
        self.check_bucket().await
    }
}

fn is_collected(e: &reef_manifest::Error) -> bool {
    matches!(e, reef_manifest::Error::VersionCollected { .. })
}

async fn present(
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

fn to_request(ops: &[SimOp], key: &Option<String>) -> WriteRequest {
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

fn brief(r: &reef_manifest::Result<crate::store::Reply>) -> String {
    match r {
        Ok(r) => format!("{r:?}").chars().take(60).collect(),
        Err(e) => e.to_string(),
    }
}

/// Whether a request may be held back to land after its caller gave up.
/// Not a checkpoint delete: checkpoints are keyed by name, so a late
/// delete removes a newer checkpoint of the same name (a known gap, see
/// docs/architecture.md; closing it needs a key per creation).
fn may_land_late(req: &Req) -> bool {
    req.mutates() && !(matches!(req, Req::Delete(_)) && req.key().contains("/checkpoint/"))
}
