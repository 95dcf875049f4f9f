//! Number fidelity through the whole path (issue #14): JSON text in →
//! document → WAL → fold → segment → JSON text out, and back. Every finite
//! double (subnormals, extremes, -0.0 included, drawn from random bit
//! patterns) reads back with the same bits; every i64 reads back equal.

mod common;

use std::sync::Arc;

use proptest::prelude::*;
use reef_engine::{Engine, EngineOptions};
use reef_format::{Document, Value, document_from_json, document_to_json, parse_json};
use reef_manifest::store::{DynStore, MemoryStore};

fn finite_double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |f| f.is_finite()),
        Just(-0.0),
        Just(0.0),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(90.28571428571429),
    ]
}

/// Writes `text` as a document, folds it, reads it back from a fresh
/// engine, and returns the document parsed from the JSON text it printed.
async fn round_trip(text: &str) -> Document {
    let store: DynStore = Arc::new(MemoryStore::new());
    let options = EngineOptions {
        background: false,
        ..EngineOptions::default()
    };
    let e = Engine::open(Arc::clone(&store), options.clone())
        .await
        .unwrap();
    let doc = document_from_json(&parse_json(text).unwrap(), "doc").unwrap();
    e.write("n", common::request(vec![common::upsert("x", doc)]))
        .await
        .unwrap();
    e.flush("n").await.unwrap();
    let fresh = Engine::open(store, options).await.unwrap();
    let back = fresh.get("n", "x").await.unwrap().unwrap().doc;
    let printed = serde_json::to_string(&document_to_json(&back)).unwrap();
    document_from_json(&parse_json(&printed).unwrap(), "doc").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn doubles_and_integers_survive_the_whole_path(
        floats in proptest::collection::vec(finite_double(), 1..8),
        ints in proptest::collection::vec(any::<i64>(), 0..4),
    ) {
        // `{:?}` is Rust's shortest round-trip form ("-0.0", "5e-324").
        let mut fields: Vec<String> = floats.iter().enumerate().map(|(i, f)| format!("\"f{i}\":{f:?}")).collect();
        fields.extend(ints.iter().enumerate().map(|(i, n)| format!("\"i{i}\":{n}")));
        let text = format!("{{{}}}", fields.join(","));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let back = rt.block_on(round_trip(&text));
        for (i, f) in floats.iter().enumerate() {
            match back.get(&format!("f{i}")) {
                Some(Value::F64(g)) => prop_assert_eq!(g.to_bits(), f.to_bits(), "{} from {}", g, text),
                other => prop_assert!(false, "f{} came back as {:?} from {}", i, other, text),
            }
        }
        for (i, n) in ints.iter().enumerate() {
            prop_assert_eq!(back.get(&format!("i{i}")), Some(&Value::I64(*n)));
        }
    }
}
