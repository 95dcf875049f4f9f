//! Who runs a namespace's background maintenance cycle (fold, then maybe
//! compaction and GC): at most one at a time, and no trigger lost.
//!
//! A commit that finds work due claims the right to run a cycle; if a
//! cycle is already running it leaves the work to it. The running cycle,
//! when it finds nothing more due, gives up its claim and then looks
//! again: a trigger that came between its last look and the release saw
//! the claim taken and left, so without the second look its work would
//! wait for the next commit or tick (loom-checked below).

use crate::sync::{AtomicBool, Ordering};

/// The claim on a namespace's background cycle.
#[derive(Default)]
pub(crate) struct Scheduler {
    running: AtomicBool,
}

impl Scheduler {
    /// Claims the cycle; false if one is running.
    pub(crate) fn try_start(&self) -> bool {
        // A compare-exchange, not a swap: a failed claim writes nothing, so
        // it cannot land after the holder's release and leave a claim that
        // no cycle holds (loom found that schedule with `swap`).
        self.running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Gives up the claim after the cycle found nothing `due`, then looks
    /// once more: true if work arrived meanwhile and the claim was taken
    /// back (the cycle goes on).
    pub(crate) fn stop(&self, due: impl Fn() -> bool) -> bool {
        self.running.store(false, Ordering::Release);
        #[cfg(all(test, loom, reef_loom_planted))]
        {
            // Planted bug (`cargo xtask loom --planted`): no second look.
            let _ = due;
            false
        }
        #[cfg(not(all(test, loom, reef_loom_planted)))]
        {
            due() && self.try_start()
        }
    }

    /// Gives up the claim without looking again (after a failed cycle:
    /// the next trigger retries).
    pub(crate) fn abandon(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// Whether a cycle is running.
    pub(crate) fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::{Arc, Mutex};

    use super::*;

    /// A cycle: works off everything due, then stops (or goes on).
    fn cycle(s: &Scheduler, work: &Mutex<u32>, active: &AtomicUsize) {
        loop {
            loop {
                let mut w = work.lock().unwrap();
                if *w == 0 {
                    break;
                }
                assert_eq!(
                    active.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two cycles at once"
                );
                *w -= 1;
                active.fetch_sub(1, Ordering::SeqCst);
            }
            if !s.stop(|| *work.lock().unwrap() > 0) {
                return;
            }
        }
    }

    /// A cycle is running when two commits add work and trigger. When all
    /// are done, no work is left: no trigger was lost.
    #[test]
    fn no_trigger_is_lost_and_one_cycle_runs() {
        loom::model(|| {
            let s = Arc::new(Scheduler::default());
            let work = Arc::new(Mutex::new(1));
            let active = Arc::new(AtomicUsize::new(0));
            assert!(s.try_start());
            let running = {
                let (s, work, active) = (s.clone(), work.clone(), active.clone());
                loom::thread::spawn(move || cycle(&s, &work, &active))
            };
            let commits: Vec<_> = (0..2)
                .map(|_| {
                    let (s, work, active) = (s.clone(), work.clone(), active.clone());
                    loom::thread::spawn(move || {
                        *work.lock().unwrap() += 1;
                        if *work.lock().unwrap() > 0 && s.try_start() {
                            cycle(&s, &work, &active);
                        }
                    })
                })
                .collect();
            running.join().unwrap();
            for c in commits {
                c.join().unwrap();
            }
            assert_eq!(*work.lock().unwrap(), 0, "work left with no cycle to do it");
            assert!(
                !s.running.swap(false, Ordering::SeqCst),
                "a claim outlived every cycle"
            );
        });
    }
}
