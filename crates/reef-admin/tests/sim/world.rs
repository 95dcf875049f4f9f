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

mod checks;
mod faults;
mod ops;

use faults::brief;

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
            // Folds of a few records, of a few more, and of everything
            // waiting: partial folds, and processes that disagree on size.
            fold_bytes_max: [300, 2 << 10, 64 << 20][actor % 3],
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

    fn new_tag(&mut self) -> i64 {
        self.next_tag += 1;
        self.next_tag
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
