//! Helpers for the engine's behaviour tests: the shared backends, and
//! small constructors for requests.

#![allow(dead_code, unused_imports)]

pub use reef_manifest::testing::*;

use reef_format::{Document, Op, OpKind, Precondition, Value, WriteRequest};

pub fn doc(pairs: &[(&str, i64)]) -> Document {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::I64(*v)))
        .collect()
}

pub fn upsert(id: &str, d: Document) -> Op {
    Op {
        kind: OpKind::Upsert,
        id: id.into(),
        doc: Some(d),
        precondition: None,
    }
}

pub fn patch(id: &str, d: Document) -> Op {
    Op {
        kind: OpKind::Patch,
        id: id.into(),
        doc: Some(d),
        precondition: None,
    }
}

pub fn delete(id: &str) -> Op {
    Op {
        kind: OpKind::Delete,
        id: id.into(),
        doc: None,
        precondition: None,
    }
}

pub fn with_if(mut op: Op, p: Precondition) -> Op {
    op.precondition = Some(p);
    op
}

pub fn request(ops: Vec<Op>) -> WriteRequest {
    WriteRequest {
        ops,
        idempotency_key: None,
    }
}

pub mod gate;
