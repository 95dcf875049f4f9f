//! Test support shared by every crate's test suites (feature `testing`):
//! temporary directories, an S3 server (the run's Ceph RGW, or a
//! serialized moto started on 127.0.0.1 and stopped on drop), and the list
//! of backends every behaviour test runs against. Not for production use.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::rng::Rng;

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nonce = crate::rng::SystemRng::new().next_u64();
        let dir = std::env::temp_dir().join(format!(
            "reef-{tag}-{nonce:016x}-{}",
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An S3 server for a test, with a prefix of its own.
///
/// With `REEF_S3_ENDPOINT` set (`cargo xtask ci` starts a Ceph RGW once per
/// run with `.ci/s3/rgw.sh` and sets `REEF_S3_*`), every test shares that
/// server and bucket, each under a fresh prefix. Otherwise a serialized
/// moto server is started on a free loopback port (the fast local option)
/// and stopped on drop.
pub struct S3Server {
    child: Option<std::process::Child>,
    pub endpoint: String,
    pub bucket: String,
    access_key_id: String,
    secret_access_key: String,
    /// Every store and URL of this handle lives under it.
    base: String,
}

/// The one variable that says "S3 tests must run": CI sets it.
fn s3_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

impl S3Server {
    /// The configured server (RGW in CI), else a fresh moto. Without
    /// either this fails under `CI=true` and otherwise says it skips and
    /// returns None.
    pub fn start() -> Option<S3Server> {
        let nonce = crate::rng::SystemRng::new().next_u64();
        if let Ok(endpoint) = std::env::var("REEF_S3_ENDPOINT") {
            let var = |name: &str| {
                std::env::var(name)
                    .unwrap_or_else(|_| panic!("REEF_S3_ENDPOINT is set but {name} is not"))
            };
            return Some(S3Server {
                child: None,
                endpoint,
                bucket: var("REEF_S3_BUCKET"),
                access_key_id: var("REEF_S3_ACCESS_KEY_ID"),
                secret_access_key: var("REEF_S3_SECRET_ACCESS_KEY"),
                base: format!("t{nonce:016x}"),
            });
        }
        Self::start_moto(nonce)
    }

    fn start_moto(nonce: u64) -> Option<S3Server> {
        use std::io::BufRead;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let python = std::env::var_os("REEF_MOTO_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/moto-venv/bin/python"));
        if !python.exists() {
            let msg = format!(
                "no S3 server: REEF_S3_ENDPOINT is unset (`.ci/s3/rgw.sh start DIR` prints it) \
                 and {} is missing (`.ci/s3/setup.sh` installs moto)",
                python.display()
            );
            if s3_required() {
                panic!("{msg}");
            }
            eprintln!("SKIPPING S3 test: {msg}");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bucket = "reef-test".to_owned();
        let mut child = std::process::Command::new(&python)
            .arg(root.join(".ci/s3/serial_moto.py"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--bucket",
                &bucket,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let ready = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(
            ready.starts_with("serial-moto ready"),
            "moto did not start: {ready:?}"
        );
        Some(S3Server {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket,
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            base: format!("t{nonce:016x}"),
        })
    }

    /// Which server this is: "Ceph RGW" (the run's) or "moto".
    pub fn kind(&self) -> &'static str {
        if self.child.is_some() {
            "moto"
        } else {
            "Ceph RGW"
        }
    }

    /// The environment a `reef` process needs to reach this server.
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }

    /// The `s3://` store URL of `prefix` (under this handle's own prefix).
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}/{prefix}", self.bucket, self.base)
    }

    /// A store on this server's bucket under `prefix` (under this
    /// handle's own prefix).
    pub fn store(&self, prefix: &str) -> crate::store::S3Store {
        self.store_with_secret(prefix, &self.secret_access_key.clone())
    }

    /// As [`S3Server::store`], signing with `secret` (a wrong one, for
    /// tests of refused credentials).
    pub fn store_with_secret(&self, prefix: &str, secret: &str) -> crate::store::S3Store {
        crate::store::S3Store::new(crate::store::S3Config {
            bucket: self.bucket.clone(),
            prefix: format!("{}/{prefix}", self.base),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            credentials: Some(crate::store::S3Credentials {
                access_key_id: self.access_key_id.clone(),
                secret_access_key: secret.to_owned(),
                session_token: None,
            }),
        })
    }

    /// The server's request log (RGW's, with each request's status), if
    /// it keeps one Reef can read.
    pub fn access_log(&self) -> Option<PathBuf> {
        self.child
            .is_none()
            .then(|| std::env::var_os("REEF_S3_ACCESS_LOG").map(PathBuf::from))
            .flatten()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The three backends, each empty, and what keeps them alive.
pub struct Backends {
    _dir: TempDir,
    _s3: Option<S3Server>,
    pub stores: Vec<(&'static str, crate::store::DynStore)>,
}

pub fn backends(tag: &str) -> Backends {
    use std::sync::Arc;
    let dir = TempDir::new(tag);
    let mut stores: Vec<(&'static str, crate::store::DynStore)> = vec![
        ("memory", Arc::new(crate::store::MemoryStore::new())),
        ("local", Arc::new(crate::store::LocalStore::new(dir.path()))),
    ];
    let s3 = S3Server::start();
    if let Some(server) = &s3 {
        stores.push(("s3", Arc::new(server.store(tag))));
    }
    Backends {
        _dir: dir,
        _s3: s3,
        stores,
    }
}
