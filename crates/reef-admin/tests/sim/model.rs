//! What the simulated clients were told, and the checks against it.
//!
//! Every op a simulated writer sends carries a unique tag in its document
//! (`{"t": tag}`), so whatever a read returns can be traced to the one op
//! that wrote it. The model keeps every request (with its outcome:
//! acknowledged with these versions, or unknown) and checks views of the
//! namespace against it:
//! - every acknowledged write is present with its exact version and
//!   content, unless a later version of the id is visible;
//! - everything visible was written by a request that was sent, with the
//!   version its acknowledgement named;
//! - no part of a request is visible unless all of it is (atomicity);
//! - versions only grow: a request acknowledged before another began has
//!   lower versions, and no two acknowledged ops share one.

use std::collections::BTreeMap;

use reef_engine::{Doc, WriteResult};
use reef_format::Value;

/// One op of a simulated request.
#[derive(Clone, Debug)]
pub enum SimOp {
    Upsert { id: String, tag: i64 },
    Delete { id: String },
}

impl SimOp {
    pub fn id(&self) -> &str {
        match self {
            SimOp::Upsert { id, .. } | SimOp::Delete { id } => id,
        }
    }
}

/// A request as sent.
#[derive(Clone, Debug)]
pub struct SentRequest {
    pub ops: Vec<SimOp>,
    pub idempotency_key: Option<String>,
    /// The highest version acknowledged before it was sent.
    pub floor_version: u64,
}

/// Where an op's tag came from.
#[derive(Clone, Copy, Debug)]
struct TagOrigin {
    request: usize,
    index: usize,
}

/// The model.
#[derive(Default)]
pub struct Model {
    pub requests: Vec<SentRequest>,
    /// Acknowledged results, by request number.
    pub acked: BTreeMap<usize, WriteResult>,
    /// Every acknowledgement in the order it was seen: (request, result).
    pub ack_log: Vec<usize>,
    tags: BTreeMap<i64, TagOrigin>,
    /// Delete requests sent, by id.
    deletes: BTreeMap<String, Vec<usize>>,
    /// Acknowledged versions, for the uniqueness check.
    versions: BTreeMap<u64, usize>,
    pub max_acked_version: u64,
}

/// A view of the namespace: id → (version, tag).
pub type View = BTreeMap<String, (u64, i64)>;

/// Turns read documents into a view, refusing any without a tag.
pub fn view_of(docs: &[Doc]) -> Result<View, String> {
    let mut view = View::new();
    for d in docs {
        let tag = match d.doc.get("t") {
            Some(Value::I64(t)) => *t,
            other => return Err(format!("{} has no tag: {other:?}", d.id)),
        };
        view.insert(d.id.clone(), (d.version, tag));
    }
    Ok(view)
}

impl Model {
    /// Records a request about to be sent; returns its number.
    pub fn send(&mut self, ops: Vec<SimOp>, idempotency_key: Option<String>) -> usize {
        let number = self.requests.len();
        for (index, op) in ops.iter().enumerate() {
            match op {
                SimOp::Upsert { tag, .. } => {
                    self.tags.insert(
                        *tag,
                        TagOrigin {
                            request: number,
                            index,
                        },
                    );
                }
                SimOp::Delete { id } => {
                    self.deletes.entry(id.clone()).or_default().push(number);
                }
            }
        }
        self.requests.push(SentRequest {
            ops,
            idempotency_key,
            floor_version: self.max_acked_version,
        });
        number
    }

    /// The version each op of an acknowledged request got (None: skipped).
    fn op_versions(&self, number: usize, r: &WriteResult) -> Vec<Option<u64>> {
        let req = &self.requests[number];
        let mut next = r.first_version;
        req.ops
            .iter()
            .map(|op| match op {
                SimOp::Upsert { .. } => {
                    let v = next;
                    next = next.map(|n| n + 1);
                    v
                }
                // Single-op requests only: applied iff it counted.
                SimOp::Delete { .. } => {
                    if r.deleted == 1 {
                        r.first_version
                    } else {
                        None
                    }
                }
            })
            .collect()
    }

    /// Records an acknowledgement, checking that its versions are new and
    /// above everything acknowledged before the request was sent.
    pub fn ack(&mut self, number: usize, r: &WriteResult) -> Result<(), String> {
        let req = &self.requests[number];
        let upserts = req
            .ops
            .iter()
            .filter(|o| matches!(o, SimOp::Upsert { .. }))
            .count();
        if r.upserted as usize != upserts || r.patched != 0 {
            return Err(format!(
                "request {number}: result counts {r:?} for {:?}",
                req.ops
            ));
        }
        if let Some(first) = r.first_version
            && first <= req.floor_version
        {
            return Err(format!(
                "request {number} got version {first}, not above {} acknowledged before it was sent",
                req.floor_version
            ));
        }
        if r.replayed {
            return Err(format!(
                "request {number} was sent once but answered as a replay: {r:?}"
            ));
        }
        for v in self.op_versions(number, r).into_iter().flatten() {
            if let Some(other) = self.versions.insert(v, number) {
                return Err(format!(
                    "version {v} acknowledged to requests {other} and {number}"
                ));
            }
            self.max_acked_version = self.max_acked_version.max(v);
        }
        self.acked.insert(number, r.clone());
        self.ack_log.push(number);
        Ok(())
    }

    /// Checks a retry's answer against the original acknowledgement.
    pub fn check_replay(&self, number: usize, r: &WriteResult) -> Result<(), String> {
        let original = &self.acked[&number];
        let same = r.lsn == original.lsn
            && r.first_version == original.first_version
            && r.last_version == original.last_version
            && r.upserted == original.upserted
            && r.deleted == original.deleted
            && r.replayed;
        if same {
            Ok(())
        } else {
            Err(format!(
                "retry of request {number} (key {:?}) answered {r:?}, first answer {original:?}",
                self.requests[number].idempotency_key
            ))
        }
    }

    /// Whether a delete of `id` may have taken effect after `version`: one
    /// with an unknown outcome, or one acknowledged at a later version.
    fn may_be_deleted(&self, id: &str, version: u64) -> bool {
        self.deletes.get(id).is_some_and(|ds| {
            ds.iter().any(|d| match self.acked.get(d) {
                None => true,
                Some(r) => r.deleted == 1 && r.first_version.is_some_and(|v| v > version),
            })
        })
    }

    /// Checks `view` against the acknowledgements among `acks` (request
    /// numbers) whose versions are at most `at`.
    pub fn check_view(&self, view: &View, acks: &[usize], at: u64) -> Result<(), String> {
        // The newest acknowledged op per id.
        let mut newest: BTreeMap<&str, (u64, Option<i64>, usize)> = BTreeMap::new();
        for &n in acks {
            let r = &self.acked[&n];
            for (op, v) in self.requests[n].ops.iter().zip(self.op_versions(n, r)) {
                let Some(v) = v else { continue };
                if v > at {
                    continue;
                }
                let tag = match op {
                    SimOp::Upsert { tag, .. } => Some(*tag),
                    SimOp::Delete { .. } => None,
                };
                let e = newest.entry(op.id()).or_insert((v, tag, n));
                if v > e.0 {
                    *e = (v, tag, n);
                }
            }
        }
        for (id, (v, tag, n)) in &newest {
            match (view.get(*id), tag) {
                (Some((seen, seen_tag)), _) if seen == v => {
                    if Some(*seen_tag) != *tag {
                        return Err(format!(
                            "{id} at version {v} holds tag {seen_tag}, but request {n} was acknowledged with {tag:?} there"
                        ));
                    }
                }
                (Some((seen, _)), _) if seen < v => {
                    return Err(format!(
                        "{id} is at version {seen}, older than acknowledged version {v} (request {n}): an acknowledged write is lost"
                    ));
                }
                (Some(_), _) => {} // a later version; checked below
                (None, None) => {}
                (None, Some(_)) if self.may_be_deleted(id, *v) => {}
                (None, Some(t)) => {
                    return Err(format!(
                        "{id} is missing, but request {n} was acknowledged writing tag {t} at version {v}: an acknowledged write is lost"
                    ));
                }
            }
        }
        for (id, &(version, tag)) in view {
            if version > at {
                return Err(format!(
                    "{id} is at version {version}, past the view's {at}"
                ));
            }
            let Some(origin) = self.tags.get(&tag) else {
                return Err(format!("{id} holds tag {tag}, which no request wrote"));
            };
            let req = &self.requests[origin.request];
            if req.ops[origin.index].id() != id {
                return Err(format!("{id} holds tag {tag}, written for another id"));
            }
            if let Some(r) = self.acked.get(&origin.request) {
                let expect = self.op_versions(origin.request, r)[origin.index];
                if expect != Some(version) {
                    return Err(format!(
                        "{id} holds tag {tag} at version {version}, acknowledged at {expect:?}"
                    ));
                }
            }
            // Atomicity: the rest of that request is visible too (or was
            // overwritten later). Upserts of one request take consecutive
            // versions in op order.
            let first = version - origin.index as u64;
            for (j, op) in req.ops.iter().enumerate() {
                let want = first + j as u64;
                match view.get(op.id()) {
                    Some((v, _)) if *v >= want => {}
                    None if self.may_be_deleted(op.id(), want) => {}
                    other => {
                        return Err(format!(
                            "request {} is partly visible: {id} holds its tag {tag} at version {version}, but {} is {other:?}, not at or past version {want}",
                            origin.request,
                            op.id()
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
