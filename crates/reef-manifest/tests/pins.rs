//! Leases and checkpoints on every backend: what GC must keep, expiry with
//! the clock-skew margin, renewal by CAS, checkpoints as snapshots.

mod common;

use std::sync::Arc;

use reef_format::Manifest;
use reef_manifest::{Error, LEASE_CLOCK_SKEW_MS, Layout, ManifestStore, ManualClock, Pins};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_checkpoints_on_every_backend() {
    let backends = common::backends("pins");
    for (name, store) in &backends.stores {
        eprintln!("backend {name}");
        let clock = ManualClock::new(1_000_000);
        let layout = Layout::new("pins").unwrap();
        let pins = Pins::new(
            Arc::clone(store),
            layout.clone(),
            Arc::new(clock.clone()),
            Arc::new(reef_manifest::SystemRng::new()),
        );
        let manifests = ManifestStore::new(Arc::clone(store), layout);
        for v in 1..=3 {
            manifests
                .commit(&Manifest {
                    version: v,
                    ..Manifest::default()
                })
                .await
                .unwrap();
        }

        // Leases pin their versions; the low watermark is the oldest.
        let mut a = pins.acquire("reader-a", 2, 10_000).await.unwrap();
        let b = pins.acquire("reader-b", 3, 10_000).await.unwrap();
        assert_ne!(a.id, b.id);
        let set = pins.pins().await.unwrap();
        assert_eq!(
            (set.versions.clone(), set.low_watermark()),
            (vec![2, 3], Some(2))
        );

        // Renewal extends; expiry (past the skew margin) unpins.
        clock.advance(9_000);
        pins.renew(&mut a, 10_000).await.unwrap();
        clock.advance(2_000 + LEASE_CLOCK_SKEW_MS);
        let set = pins.pins().await.unwrap();
        assert_eq!(set.versions, vec![2], "b expired, a was renewed");
        assert_eq!(set.expired_leases, vec![b.id.clone()]);
        // An expired lease is not revived, even though its object remains.
        let mut b = b;
        assert!(matches!(
            pins.renew(&mut b, 10_000).await,
            Err(Error::LeaseGone { .. })
        ));

        // Within the skew margin a lease still counts.
        let c = pins.acquire("reader-c", 1, 1).await.unwrap();
        clock.advance(LEASE_CLOCK_SKEW_MS - 1);
        assert!(pins.pins().await.unwrap().versions.contains(&1));
        pins.release(c).await.unwrap();

        // A released lease cannot be renewed back to life.
        let mut gone = a.clone();
        pins.release(a).await.unwrap();
        assert!(matches!(
            pins.renew(&mut gone, 10_000).await,
            Err(Error::LeaseGone { .. })
        ));

        // Checkpoints: named, unique, durable pins that open as snapshots.
        pins.create_checkpoint("before-migration", 1).await.unwrap();
        assert!(matches!(
            pins.create_checkpoint("before-migration", 3).await,
            Err(Error::CheckpointExists { .. })
        ));
        assert!(matches!(
            pins.create_checkpoint("bad name", 1).await,
            Err(Error::InvalidName { .. })
        ));
        let names: Vec<String> = pins
            .checkpoints()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["before-migration"]);
        assert_eq!(
            pins.open_checkpoint("before-migration", &manifests)
                .await
                .unwrap()
                .version,
            1
        );
        assert!(pins.pins().await.unwrap().versions.contains(&1));
        pins.delete_checkpoint("before-migration").await.unwrap();
        assert!(pins.checkpoints().await.unwrap().is_empty());
    }
}
