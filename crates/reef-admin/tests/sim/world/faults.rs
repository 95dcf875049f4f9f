//! The scheduler's own moves: answering a parked request (and deciding its
//! fate), landing a late request, crashing or pausing an actor, and moving
//! virtual time.

use super::*;

impl World {
    pub(super) async fn release(&mut self, ready: &[usize]) {
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

    pub(super) async fn land_late(&mut self) {
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

    pub(super) fn crash(&mut self) {
        let actor = self.dice.below(self.actors.len() as u64) as usize;
        self.crash_actor(actor);
    }

    pub(super) fn crash_actor(&mut self, actor: usize) {
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

    pub(super) fn pause(&mut self) {
        let actor = self.dice.below(self.actors.len() as u64) as usize;
        self.pause_actor(actor);
    }

    pub(super) fn pause_actor(&mut self, actor: usize) {
        let steps = 20 + self.dice.below(300);
        self.actors[actor].paused_until = self.step + steps;
        self.count("pause");
        self.note(format!("{} pause a{actor} for {steps} steps", self.step));
    }

    pub(super) async fn pass_time(&mut self) {
        let ms = if self.cfg.faults.has(Fault::TimeJump) && self.dice.chance(5) {
            self.count("time-jump");
            3_600_000 + self.dice.below(3 * 3_600_000)
        } else {
            1 + self.dice.below(2_000)
        };
        tokio::time::advance(Duration::from_millis(ms)).await;
        self.note(format!("{} time +{ms}ms", self.step));
    }
}

pub(super) fn brief(r: &reef_manifest::Result<crate::store::Reply>) -> String {
    match r {
        Ok(r) => format!("{r:?}").chars().take(60).collect(),
        Err(e) => e.to_string(),
    }
}

/// Whether a request may be held back to land after its caller gave up.
/// Not a checkpoint delete: checkpoints are keyed by name, so a late
/// delete removes a newer checkpoint of the same name (a known gap, see
/// docs/architecture.md; closing it needs a key per creation).
pub(super) fn may_land_late(req: &Req) -> bool {
    req.mutates() && !(matches!(req, Req::Delete(_)) && req.key().contains("/checkpoint/"))
}
