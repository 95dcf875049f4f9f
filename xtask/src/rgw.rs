//! The run's S3 server: a single-node Ceph RGW on 127.0.0.1, started by
//! `.ci/s3/rgw.sh` once per `cargo xtask ci` (or per step, when a step
//! runs alone) and stopped when the guard drops (also on failure), so no
//! process is left behind. The tests find it through the `REEF_S3_*`
//! variables the script prints.
//!
//! Under `CI=true` RGW is required. Elsewhere, without Ceph installed, the
//! S3 tests fall back to moto if `.ci/s3/setup.sh` installed it, and
//! otherwise skip (saying so).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util;

/// A running RGW; stopped on drop.
pub struct Rgw {
    dir: PathBuf,
    /// `REEF_S3_*` settings for the test processes.
    pub env: Vec<(String, String)>,
}

fn script() -> PathBuf {
    util::root().join(".ci/s3/rgw.sh")
}

impl Rgw {
    /// Starts RGW, or returns `None` where it is not installed and not
    /// required.
    pub fn start() -> Result<Option<Rgw>> {
        let installed = ["ceph-mon", "ceph-osd", "radosgw"].iter().all(|b| {
            util::succeeds_quietly(Command::new("sh").args(["-c", &format!("command -v {b}")]))
        });
        if !installed {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                bail!("Ceph RGW is not installed (ceph-mon ceph-osd radosgw); .ci/run installs it");
            }
            println!("Ceph RGW is not installed: S3 tests use moto if installed, else skip");
            return Ok(None);
        }
        let dir = util::root().join("target/rgw");
        println!("$ .ci/s3/rgw.sh start {}", dir.display());
        let out = Command::new("bash")
            .arg(script())
            .args(["start".as_ref(), dir.as_os_str()])
            .output()
            .context("could not run .ci/s3/rgw.sh")?;
        // A guard from here on: a failed start is stopped too.
        let mut rgw = Rgw {
            dir,
            env: Vec::new(),
        };
        if !out.status.success() {
            bail!(
                "starting RGW failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        rgw.env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.starts_with("REEF_S3_"))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if rgw.env.is_empty() {
            bail!("RGW started but printed no REEF_S3_* settings");
        }
        let endpoint = rgw.env.iter().find(|(k, _)| k == "REEF_S3_ENDPOINT");
        println!("RGW ready at {}", endpoint.map_or("?", |(_, v)| v.as_str()));
        Ok(Some(rgw))
    }

    /// Lets every later step of this run use this server.
    pub fn share(&self) {
        *SHARED.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.env.clone());
    }
}

/// The `REEF_S3_*` settings of the server `cargo xtask ci` started for the
/// whole run, if it did.
static SHARED: std::sync::Mutex<Option<Vec<(String, String)>>> = std::sync::Mutex::new(None);

/// A step that talks S3: sets the `REEF_S3_*` variables on `cmd`, from the
/// run's server, else from one started for this step (returned: keep it
/// until the step ends), else none (not installed, not required).
pub fn for_step(cmd: &mut Command) -> Result<Option<Rgw>> {
    let shared = SHARED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (own, env) = match shared {
        Some(env) => (None, env),
        None => match Rgw::start()? {
            Some(rgw) => {
                let env = rgw.env.clone();
                (Some(rgw), env)
            }
            None => (None, Vec::new()),
        },
    };
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Ok(own)
}

impl Drop for Rgw {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop".as_ref(), self.dir.as_os_str()])
            .status();
    }
}
