//! Test support shared by every crate's test suites (feature `testing`):
//! temporary directories, a serialized moto S3 server started on
//! 127.0.0.1 and stopped on drop, and the list of backends every
//! behaviour test runs against. Not for production use.
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

/// A serialized moto S3 server on a free loopback port, stopped on drop.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
    pub bucket: String,
}

impl S3Server {
    /// Starts the server with one fresh bucket. Without moto installed
    /// (`.ci/s3/setup.sh` installs it; `cargo xtask ci` runs that) this
    /// fails under `CI=true` and otherwise says it skips and returns None.
    pub fn start() -> Option<S3Server> {
        use std::io::BufRead;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let python = std::env::var_os("REEF_MOTO_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/moto-venv/bin/python"));
        if !python.exists() {
            let msg = format!(
                "no moto server: {} is missing; run .ci/s3/setup.sh (cargo xtask ci does)",
                python.display()
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
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
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket,
        })
    }

    /// The environment a `reef` process needs to reach this server.
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }

    /// A store on this server's bucket under `prefix`.
    pub fn store(&self, prefix: &str) -> crate::store::S3Store {
        crate::store::S3Store::new(crate::store::S3Config {
            bucket: self.bucket.clone(),
            prefix: prefix.to_owned(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            session_token: None,
        })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
