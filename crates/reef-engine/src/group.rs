//! The group-commit queue: requests waiting for a batch, and which caller
//! leads (DESIGN §3: one leader per namespace writes one WAL object per
//! batch).
//!
//! Invariants (loom-checked below unless marked):
//! - at most one leader at a time;
//! - no request is stranded: a request pushed while a leader runs is taken
//!   by that leader (it gives up leadership only under the lock, with the
//!   queue empty), and a push that finds no leader makes its caller the
//!   leader;
//! - every batch holds at least one request and, unless it is a single
//!   request, stays within the count and byte bounds;
//! - requests leave in the order they arrived (by construction: one
//!   `VecDeque`, popped from the front; not a loom check);
//! - a caller that stops waiting strands nobody: the leader runs as a task
//!   of its own and answers every request it took.

use std::collections::VecDeque;

use crate::sync::{Mutex, MutexGuard};

struct Inner<T> {
    pending: VecDeque<(T, usize)>,
    leader: bool,
}

/// Requests waiting for the leader.
pub(crate) struct GroupQueue<T> {
    inner: Mutex<Inner<T>>,
}

impl<T> Default for GroupQueue<T> {
    fn default() -> Self {
        GroupQueue {
            inner: Mutex::new(Inner {
                pending: VecDeque::new(),
                leader: false,
            }),
        }
    }
}

impl<T> GroupQueue<T> {
    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // Every operation is a single push/pop step: poison is benign.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` (of `bytes`); true if the caller must start a leader.
    pub(crate) fn push(&self, item: T, bytes: usize) -> bool {
        let mut q = self.lock();
        q.pending.push_back((item, bytes));
        !std::mem::replace(&mut q.leader, true)
    }

    /// The leader's next batch: requests in arrival order, at most
    /// `requests_max` and `bytes_max` (a single request always fits).
    /// `None` when the queue is empty; the caller is no longer leader.
    pub(crate) fn next_batch(&self, requests_max: usize, bytes_max: usize) -> Option<Vec<T>> {
        let mut q = self.lock();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some((_, next)) = q.pending.front() {
            let fits =
                batch.is_empty() || (batch.len() < requests_max && bytes + next <= bytes_max);
            if !fits {
                break;
            }
            bytes += next;
            if let Some((item, _)) = q.pending.pop_front() {
                batch.push(item);
            }
        }
        if batch.is_empty() {
            #[cfg(all(test, loom))]
            if crate::sync::planted("queue-two-step-release") {
                // Planted bug: leadership is given up in a second critical
                // section, so a push in between finds a leader that is
                // leaving and is stranded.
                drop(q);
                self.lock().leader = false;
                return None;
            }
            q.leader = false;
            return None;
        }
        Some(batch)
    }

    /// Requests waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().pending.len()
    }

    /// Whether a leader runs or requests wait.
    pub(crate) fn busy(&self) -> bool {
        let q = self.lock();
        q.leader || !q.pending.is_empty()
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::{Arc, Condvar};

    use super::*;

    /// Where a leader leaves a writer's answer (the oneshot of `submit`).
    #[derive(Default)]
    struct Answer {
        slot: loom::sync::Mutex<Option<u32>>,
        ready: Condvar,
    }

    impl Answer {
        fn send(&self, v: u32) {
            let previous = self.slot.lock().unwrap().replace(v);
            assert!(previous.is_none(), "request {v} taken twice");
            self.ready.notify_one();
        }

        fn recv(&self) -> u32 {
            let mut slot = self.slot.lock().unwrap();
            loop {
                if let Some(v) = *slot {
                    return v;
                }
                slot = self.ready.wait(slot).unwrap();
            }
        }
    }

    /// A leader loop, as `commit::lead` runs it: takes batches, checks
    /// that no two leaders hold one at once, and answers every request of
    /// each (a caller that gave up just does not hear the answer).
    fn lead(q: &GroupQueue<(u32, Arc<Answer>)>, active: &AtomicUsize) {
        while let Some(batch) = q.next_batch(2, 10) {
            assert_eq!(
                active.fetch_add(1, Ordering::SeqCst),
                0,
                "two leaders at once"
            );
            assert!(
                !batch.is_empty() && batch.len() <= 2,
                "batch bounds: {} requests",
                batch.len()
            );
            active.fetch_sub(1, Ordering::SeqCst);
            for (w, answer) in batch {
                answer.send(w);
            }
        }
    }

    /// Three writers push at once (one request is too big to share a
    /// batch); whoever must lead does. Writer 1 gives up waiting at once:
    /// if it must lead, it starts a leader of its own first, as `submit`
    /// spawns one (loom's thread budget lets the others lead inline, which
    /// the queue cannot tell apart). Every writer still waiting hears its
    /// own answer, every request (the abandoned one too) is taken exactly
    /// once, and at the end nothing is queued and no leader runs.
    #[test]
    fn no_request_is_stranded_and_one_leader_runs() {
        loom::model(|| {
            let q = Arc::new(GroupQueue::default());
            let leaders = Arc::new(AtomicUsize::new(0));
            let answers: Vec<Arc<Answer>> = (0..3).map(|_| Arc::default()).collect();
            let writers: Vec<_> = (0..3u32)
                .map(|w| {
                    let (q, leaders) = (q.clone(), leaders.clone());
                    let answer = answers[w as usize].clone();
                    loom::thread::spawn(move || {
                        let bytes = if w == 2 { 50 } else { 4 };
                        let must_lead = q.push((w, answer.clone()), bytes);
                        if w == 1 {
                            return must_lead
                                .then(|| loom::thread::spawn(move || lead(&q, &leaders)));
                        }
                        if must_lead {
                            lead(&q, &leaders);
                        }
                        assert_eq!(answer.recv(), w, "writer {w} answered");
                        None
                    })
                })
                .collect();
            for w in writers {
                if let Some(leader) = w.join().unwrap() {
                    leader.join().unwrap();
                }
            }
            assert!(!q.busy(), "nothing left queued, no leader");
            for (w, a) in answers.iter().enumerate() {
                assert!(a.slot.lock().unwrap().is_some(), "request {w} never taken");
            }
        });
    }
}
