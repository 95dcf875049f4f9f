//! WAL and segment objects through `Objects`, on every backend.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use reef_format::{Entry, OpKind, SegmentBuilder, SegmentOptions, WalOp, WalRecord, WalRequest};
use reef_manifest::store::PutOutcome;
use reef_manifest::{Error, Layout, Objects};

fn record(lsn: u64) -> WalRecord {
    WalRecord {
        lsn,
        writer_id: 9,
        timestamp_ms: 0,
        requests: vec![WalRequest {
            idempotency_key: None,
            fingerprint: 1,
            skipped: 0,
            ops: vec![WalOp {
                kind: OpKind::Delete,
                entry: Entry::delete(format!("id{lsn}"), lsn),
            }],
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_and_segments_on_every_backend() {
    let backends = common::backends("objects");
    for (name, store) in &backends.stores {
        eprintln!("backend {name}");
        let objects = Objects::new(Arc::clone(store), Layout::new("obj").unwrap());
        for lsn in [1, 2, 3, 10, 11] {
            assert!(matches!(
                objects.put_wal(&record(lsn)).await.unwrap(),
                PutOutcome::Written(_)
            ));
        }
        // An LSN is taken once: a second writer of lsn 2 loses.
        assert_eq!(
            objects.put_wal(&record(2)).await.unwrap(),
            PutOutcome::ConditionFailed
        );
        assert_eq!(objects.get_wal(2).await.unwrap().unwrap(), record(2));
        assert!(objects.get_wal(4).await.unwrap().is_none());
        assert_eq!(objects.list_wal(0).await.unwrap(), [1, 2, 3, 10, 11]);
        assert_eq!(objects.list_wal(3).await.unwrap(), [10, 11]);
        assert!(objects.list_wal(11).await.unwrap().is_empty());

        // A record stored under the wrong key is caught.
        let misplaced = Layout::new("obj").unwrap().wal_key(5);
        store
            .put(&misplaced, Bytes::from(record(6).encode().unwrap()))
            .await
            .unwrap();
        assert!(matches!(
            objects.get_wal(5).await,
            Err(Error::Inconsistent { .. })
        ));

        let mut b = SegmentBuilder::new(SegmentOptions::default());
        b.add(&Entry::delete("a", 1)).unwrap();
        let built = b.finish().unwrap();
        objects.put_segment(0xfeed, &built).await.unwrap();
        // The same bytes again: a retry after a lost response succeeds.
        objects.put_segment(0xfeed, &built).await.unwrap();
        // Other bytes under the same id: ids must be unique.
        let mut b = SegmentBuilder::new(SegmentOptions::default());
        b.add(&Entry::delete("b", 2)).unwrap();
        let other = b.finish().unwrap();
        assert!(
            objects.put_segment(0xfeed, &other).await.is_err(),
            "segment ids are unique"
        );
        assert_eq!(objects.list_segments().await.unwrap(), [0xfeed]);
    }
}

/// The WAL cursor walks up to the newest LSN listed when it began, in
/// batches of at most `max` records (batches of 64 reads inside), and a
/// missing LSN ends the walk with `missing`, as sequential reads would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_cursor_reads_in_batches_and_stops_at_a_gap() {
    let backends = common::backends("wal-cursor");
    for (name, store) in &backends.stores {
        let objects = Objects::new(Arc::clone(store), Layout::new("cur").unwrap());
        for lsn in (1..=150).filter(|l| *l != 140) {
            objects.put_wal(&record(lsn)).await.unwrap();
        }
        let lsns =
            |run: &reef_manifest::WalRun| run.records.iter().map(|r| r.lsn).collect::<Vec<_>>();
        let mut wal = objects.wal_after(0).await.unwrap();
        let a = wal.next(100).await.unwrap();
        assert_eq!(lsns(&a), (1..=100).collect::<Vec<_>>(), "{name}");
        assert_eq!(a.missing, None);
        let b = wal.next(100).await.unwrap();
        assert_eq!(lsns(&b), (101..=139).collect::<Vec<_>>(), "{name}");
        assert_eq!(b.missing, Some(140), "{name}");
        assert!(wal.next(100).await.unwrap().records.is_empty(), "{name}");
        // From past the gap to the end, then nothing; max 0 reads nothing.
        let mut wal = objects.wal_after(140).await.unwrap();
        assert!(wal.next(0).await.unwrap().records.is_empty());
        assert_eq!(
            lsns(&wal.next(64).await.unwrap()),
            (141..=150).collect::<Vec<_>>()
        );
        let end = wal.next(64).await.unwrap();
        assert!(end.records.is_empty() && end.missing.is_none(), "{name}");
        // Nothing after the newest: an empty walk.
        let mut wal = objects.wal_after(150).await.unwrap();
        assert!(wal.next(10).await.unwrap().records.is_empty());
        // The fold's form: at most `max` records.
        assert_eq!(objects.read_wal_after(0, 5).await.unwrap().records.len(), 5);
    }
}

/// A walk listed by keys only (recovery's) knows no sizes before it
/// reads: `next_within` stops at the record that reaches the budget (none
/// after it), reads at least one, and the walk still visits every record
/// once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_only_wal_cursor_stops_at_its_byte_budget() {
    let backends = common::backends("wal-read-bytes");
    for (name, store) in &backends.stores {
        let objects = Objects::new(Arc::clone(store), Layout::new("rb").unwrap());
        let mut sizes = vec![0];
        for lsn in 1..=40 {
            let r = record(lsn);
            sizes.push(r.encode().unwrap().len() as u64);
            objects.put_wal(&r).await.unwrap();
        }
        let budget = sizes[1] * 7 + sizes[1] / 2;
        let mut wal = objects.wal_after(0).await.unwrap();
        let mut seen = Vec::new();
        loop {
            let run = wal.next_within(usize::MAX, budget).await.unwrap();
            let lsns: Vec<u64> = run.records.iter().map(|r| r.lsn).collect();
            let Some((&last, before)) = lsns.split_last() else {
                break;
            };
            let held: u64 = before.iter().map(|&l| sizes[l as usize]).sum();
            assert!(held < budget, "{name}: {lsns:?}");
            // More than one record per call (a cut that knew no sizes used
            // to read one), at most the 8 that reach the budget.
            assert!(
                (2..=8).contains(&lsns.len()) || last == 40,
                "{name}: {lsns:?}"
            );
            seen.extend(lsns);
        }
        assert_eq!(seen, (1..=40).collect::<Vec<_>>(), "{name}");
        // A budget of one byte still reads one record.
        let mut wal = objects.wal_after(0).await.unwrap();
        let one = wal.next_within(usize::MAX, 1).await.unwrap();
        assert_eq!(one.records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [1]);
    }
}

/// `next_within` cuts a batch by the listed sizes before reading it: the
/// records returned fit in the budget, except a first record that alone
/// exceeds it, which is read so the walk moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_cursor_cuts_batches_by_listed_bytes() {
    let backends = common::backends("wal-bytes");
    for (name, store) in &backends.stores {
        let objects = Objects::new(Arc::clone(store), Layout::new("cut").unwrap());
        let mut sizes = Vec::new();
        for lsn in 1..=20 {
            let r = record(lsn);
            sizes.push(r.encode().unwrap().len() as u64);
            objects.put_wal(&r).await.unwrap();
        }
        let budget = sizes[0] * 3 + sizes[0] / 2;
        let mut wal = objects.wal_after_sized(0).await.unwrap();
        let a = wal.next_within(usize::MAX, budget).await.unwrap();
        let taken: u64 = sizes[..a.records.len()].iter().sum();
        assert!(taken <= budget, "{name}: {taken} > {budget}");
        assert_eq!(a.records.len(), 3, "{name}");
        // A budget smaller than one record still reads one.
        let b = wal.next_within(usize::MAX, 1).await.unwrap();
        assert_eq!(b.records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [4]);
        // The count still bounds it; the rest comes whole.
        assert_eq!(wal.next_within(2, u64::MAX).await.unwrap().records.len(), 2);
        let rest = wal.next_within(usize::MAX, u64::MAX).await.unwrap();
        assert_eq!(rest.records.first().map(|r| r.lsn), Some(7), "{name}");
        assert_eq!(rest.records.len(), 14, "{name}");
    }
}
