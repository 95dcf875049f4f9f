//! The simulated bucket. Every request an actor makes is parked here until
//! the scheduler picks it; the scheduler then decides its fate (deliver it,
//! fail it before it happens, lose its response after it happened, or
//! accept it and let it land later, after its caller gave up) and carries
//! out the effect itself, on the one true store, at the moment it chooses.
//! So the order in which concurrent requests take effect is the
//! scheduler's, drawn from the seed.
//!
//! A crashed actor's handle refuses every later request (the process is
//! gone); its parked requests are dropped or kept to land late.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use reef_manifest::store::{
    DynStore, ListPage, MemoryStore, Object, ObjectMeta, ObjectStore, PutOutcome, Tag,
};
use reef_manifest::{Error, Result};
use tokio::sync::oneshot;

/// One request, as data, so the scheduler can carry it out at any time.
#[derive(Clone, Debug)]
pub enum Req {
    Get(String),
    GetRange(String, Range<u64>),
    GetRangeSized(String, Range<u64>),
    Head(String),
    Put(String, Bytes),
    PutIfAbsent(String, Bytes),
    PutIfMatch(String, Bytes, Tag),
    List(String, Option<String>, usize),
    Delete(String),
}

impl Req {
    pub fn key(&self) -> &str {
        match self {
            Req::Get(k)
            | Req::GetRange(k, _)
            | Req::GetRangeSized(k, _)
            | Req::Head(k)
            | Req::Put(k, _)
            | Req::PutIfAbsent(k, _)
            | Req::PutIfMatch(k, _, _)
            | Req::List(k, _, _)
            | Req::Delete(k) => k,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Req::Get(_) => "get",
            Req::GetRange(..) => "get_range",
            Req::GetRangeSized(..) => "get_range_sized",
            Req::Head(_) => "head",
            Req::Put(..) => "put",
            Req::PutIfAbsent(..) => "put_if_absent",
            Req::PutIfMatch(..) => "put_if_match",
            Req::List(..) => "list",
            Req::Delete(_) => "delete",
        }
    }

    /// Whether carrying it out changes the bucket.
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            Req::Put(..) | Req::PutIfAbsent(..) | Req::PutIfMatch(..) | Req::Delete(_)
        )
    }
}

/// What a request returns.
#[derive(Debug)]
pub enum Reply {
    Get(Option<Object>),
    Bytes(Bytes),
    Sized((Bytes, u64)),
    Head(Option<ObjectMeta>),
    Unit,
    Put(PutOutcome),
    List(ListPage),
}

/// Carries `req` out on the true store.
pub async fn execute(truth: &MemoryStore, req: &Req) -> Result<Reply> {
    Ok(match req {
        Req::Get(k) => Reply::Get(truth.get(k).await?),
        Req::GetRange(k, r) => Reply::Bytes(truth.get_range(k, r.clone()).await?),
        Req::GetRangeSized(k, r) => Reply::Sized(truth.get_range_sized(k, r.clone()).await?),
        Req::Head(k) => Reply::Head(truth.head(k).await?),
        Req::Put(k, b) => {
            truth.put(k, b.clone()).await?;
            Reply::Unit
        }
        Req::PutIfAbsent(k, b) => Reply::Put(truth.put_if_absent(k, b.clone()).await?),
        Req::PutIfMatch(k, b, t) => Reply::Put(truth.put_if_match(k, b.clone(), t).await?),
        Req::List(p, s, l) => Reply::List(truth.list(p, s.as_deref(), *l).await?),
        Req::Delete(k) => {
            truth.delete(k).await?;
            Reply::Unit
        }
    })
}

/// A request waiting for the scheduler.
pub struct Parked {
    pub actor: usize,
    pub req: Req,
    pub answer: oneshot::Sender<Result<Reply>>,
}

/// State shared by every actor's handle and the scheduler.
#[derive(Default)]
pub struct Shared {
    pub parked: Vec<Parked>,
    /// Each actor's current incarnation; older ones have crashed.
    pub incarnations: Vec<u64>,
    /// Bumped by every request parked and every answer given: the
    /// scheduler's sign that something is still moving.
    pub generation: u64,
}

/// The parking lot.
#[derive(Clone, Default)]
pub struct Bucket {
    pub truth: MemoryStore,
    pub shared: Arc<Mutex<Shared>>,
}

impl Bucket {
    pub fn new(actors: usize) -> Bucket {
        let b = Bucket::default();
        b.shared.lock().unwrap().incarnations = vec![0; actors];
        b
    }

    /// Marks `actor`'s earlier incarnations crashed.
    pub fn set_incarnation(&self, actor: usize, incarnation: u64) {
        self.shared.lock().unwrap().incarnations[actor] = incarnation;
    }

    pub fn generation(&self) -> u64 {
        self.shared.lock().unwrap().generation
    }

    /// A handle for one incarnation of one actor.
    pub fn handle(&self, actor: usize, incarnation: u64) -> DynStore {
        Arc::new(Handle {
            bucket: self.clone(),
            actor,
            incarnation,
        })
    }
}

struct Handle {
    bucket: Bucket,
    actor: usize,
    incarnation: u64,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimStore(actor {})", self.actor)
    }
}

/// The error a crashed process's leftover tasks see: not transient, so
/// they stop at once.
pub fn crashed(req: &Req) -> Error {
    Error::Injected {
        op: req.name(),
        key: req.key().to_owned(),
        fault: "the process crashed",
        transient: false,
    }
}

/// The error a caller sees when its request failed, was lost or will land
/// late: transient, as a timeout would be.
pub fn transient(req: &Req, fault: &'static str) -> Error {
    Error::Injected {
        op: req.name(),
        key: req.key().to_owned(),
        fault,
        transient: true,
    }
}

impl Handle {
    async fn call(&self, req: Req) -> Result<Reply> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.bucket.shared.lock().unwrap();
            if s.incarnations[self.actor] != self.incarnation {
                return Err(crashed(&req));
            }
            s.generation += 1;
            s.parked.push(Parked {
                actor: self.actor,
                req: req.clone(),
                answer: tx,
            });
        }
        // A dropped sender: the scheduler crashed this process meanwhile.
        rx.await.unwrap_or_else(|_| Err(crashed(&req)))
    }
}

fn mismatch(req: &Req) -> Error {
    Error::Injected {
        op: req.name(),
        key: req.key().to_owned(),
        fault: "simulator bug: a reply of the wrong kind",
        transient: false,
    }
}

#[async_trait]
impl ObjectStore for Handle {
    async fn get(&self, key: &str) -> Result<Option<Object>> {
        let req = Req::Get(key.to_owned());
        match self.call(req.clone()).await? {
            Reply::Get(o) => Ok(o),
            _ => Err(mismatch(&req)),
        }
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let req = Req::GetRange(key.to_owned(), range);
        match self.call(req.clone()).await? {
            Reply::Bytes(b) => Ok(b),
            _ => Err(mismatch(&req)),
        }
    }
    async fn get_range_sized(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64)> {
        let req = Req::GetRangeSized(key.to_owned(), range);
        match self.call(req.clone()).await? {
            Reply::Sized(b) => Ok(b),
            _ => Err(mismatch(&req)),
        }
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let req = Req::Head(key.to_owned());
        match self.call(req.clone()).await? {
            Reply::Head(m) => Ok(m),
            _ => Err(mismatch(&req)),
        }
    }
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let req = Req::Put(key.to_owned(), bytes);
        match self.call(req.clone()).await? {
            Reply::Unit => Ok(()),
            _ => Err(mismatch(&req)),
        }
    }
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        let req = Req::PutIfAbsent(key.to_owned(), bytes);
        match self.call(req.clone()).await? {
            Reply::Put(p) => Ok(p),
            _ => Err(mismatch(&req)),
        }
    }
    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome> {
        let req = Req::PutIfMatch(key.to_owned(), bytes, expected.clone());
        match self.call(req.clone()).await? {
            Reply::Put(p) => Ok(p),
            _ => Err(mismatch(&req)),
        }
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let req = Req::List(prefix.to_owned(), start_after.map(str::to_owned), limit);
        match self.call(req.clone()).await? {
            Reply::List(p) => Ok(p),
            _ => Err(mismatch(&req)),
        }
    }
    async fn delete(&self, key: &str) -> Result<()> {
        let req = Req::Delete(key.to_owned());
        match self.call(req.clone()).await? {
            Reply::Unit => Ok(()),
            _ => Err(mismatch(&req)),
        }
    }
}
