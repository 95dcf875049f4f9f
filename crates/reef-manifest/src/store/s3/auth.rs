//! Where an S3 store's settings and credentials come from.
//!
//! Settings: `AWS_ENDPOINT_URL` (optional; a custom endpoint means path
//! style), `AWS_REGION` or `AWS_DEFAULT_REGION` (default `us-east-1`).
//! Credentials, first found wins, resolved at the first request and kept
//! until they expire or for five minutes: explicit ones (`S3Config::credentials`), then the
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional
//! `AWS_SESSION_TOKEN`), then profile `AWS_PROFILE` (else `default`) in
//! the shared credentials file and then the config file
//! (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`, default
//! `~/.aws/credentials` and `~/.aws/config`). None found: an error that
//! lists what was tried. Secrets never appear in errors or `Debug`.

use async_trait::async_trait;
use reqsign_aws_v4::{Credential, EnvCredentialProvider, ProfileCredentialProvider};
use reqsign_core::{
    Context, FileRead, OsEnv, ProvideCredential, ProvideCredentialChain, SigningCredential,
};

use crate::error::{Error, Result};

/// Credentials given explicitly (tests, embedders).
#[derive(Clone)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials").finish_non_exhaustive()
    }
}

/// Where and how to connect. `Debug` never shows a secret.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (no trailing `/`), possibly empty.
    pub prefix: String,
    /// A custom endpoint (S3-compatible servers); `None` for AWS.
    pub endpoint: Option<String>,
    /// Signing region.
    pub region: String,
    /// Explicit credentials; `None` to look them up (see the module doc).
    pub credentials: Option<S3Credentials>,
}

impl S3Config {
    /// `bucket`/`prefix` with settings from the process environment.
    pub fn from_env(bucket: &str, prefix: &str) -> S3Config {
        S3Config::from_vars(bucket, prefix, |name| std::env::var(name).ok())
    }

    /// Same, reading variables through `var` (tests pass a map).
    pub fn from_vars(bucket: &str, prefix: &str, var: impl Fn(&str) -> Option<String>) -> S3Config {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        S3Config {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: var("AWS_ENDPOINT_URL"),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            credentials: None,
        }
    }
}

/// Reads the shared config files for the profile provider.
#[derive(Debug)]
struct TokioFileRead;

#[async_trait]
impl FileRead for TokioFileRead {
    async fn file_read(&self, path: &str) -> reqsign_core::Result<Vec<u8>> {
        tokio::fs::read(path)
            .await
            .map_err(|e| reqsign_core::Error::unexpected(format!("reading {path}: {e}")))
    }
}

/// The credentials a store signs with.
pub(super) struct Auth {
    ctx: Context,
    fixed: Option<Credential>,
    chain: ProvideCredentialChain<Credential>,
    /// The credential found, and when: looked up again after
    /// `CREDENTIALS_REFRESH`, or sooner if it expires, so a long-running
    /// process picks up rotated keys and tokens.
    cached: tokio::sync::Mutex<Option<(Credential, tokio::time::Instant)>>,
}

/// How long a looked-up credential is used before it is looked up again.
const CREDENTIALS_REFRESH: std::time::Duration = std::time::Duration::from_secs(300);

impl Auth {
    pub fn new(explicit: Option<S3Credentials>) -> Auth {
        Auth::with_context(
            explicit,
            Context::new().with_env(OsEnv).with_file_read(TokioFileRead),
        )
    }

    /// With a given context (tests give a fixed environment).
    pub fn with_context(explicit: Option<S3Credentials>, ctx: Context) -> Auth {
        Auth {
            ctx,
            fixed: explicit.map(|c| Credential {
                access_key_id: c.access_key_id,
                secret_access_key: c.secret_access_key,
                session_token: c.session_token,
                expires_in: None,
            }),
            chain: ProvideCredentialChain::new()
                .push(EnvCredentialProvider::new())
                .push(ProfileCredentialProvider::new()),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The credential to sign with: explicit, cached while valid, or
    /// looked up again.
    pub async fn credential(&self) -> Result<Credential> {
        if let Some(c) = &self.fixed {
            return Ok(c.clone());
        }
        let mut cached = self.cached.lock().await;
        if let Some((c, _)) = cached
            .as_ref()
            .filter(|(c, at)| c.is_valid() && at.elapsed() < CREDENTIALS_REFRESH)
        {
            return Ok(c.clone());
        }
        // The chain moves on past a provider that fails (an unreadable
        // file); all of them finding nothing is the error.
        let found = self
            .chain
            .provide_credential(&self.ctx)
            .await
            .ok()
            .flatten();
        let Some(c) = found.filter(|c| c.is_valid()) else {
            return Err(Error::NoCredentials {
                tried: self.tried(),
            });
        };
        *cached = Some((c.clone(), tokio::time::Instant::now()));
        Ok(c)
    }

    /// What the lookup tried, for the error.
    fn tried(&self) -> String {
        let var = |name: &str| self.ctx.env_var(name);
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
        let credentials =
            var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| "~/.aws/credentials".to_owned());
        let config = var("AWS_CONFIG_FILE").unwrap_or_else(|| "~/.aws/config".to_owned());
        format!(
            "the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), then profile \
             {profile:?} (AWS_PROFILE) in {credentials} and {config}"
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use reqsign_core::StaticEnv;

    use super::*;

    fn auth(vars: &[(&str, &str)], home: &std::path::Path) -> Auth {
        let env = StaticEnv {
            home_dir: Some(home.to_path_buf()),
            envs: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        };
        Auth::with_context(
            None,
            Context::new().with_env(env).with_file_read(TokioFileRead),
        )
    }

    fn temp_home(tag: &str) -> std::path::PathBuf {
        use crate::rng::Rng;
        let nonce = crate::rng::SystemRng::new().next_u64();
        let dir = std::env::temp_dir().join(format!("reef-auth-{tag}-{nonce:016x}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        dir
    }

    #[tokio::test]
    async fn the_environment_comes_first_with_its_session_token() {
        let home = temp_home("env");
        std::fs::write(
            home.join(".aws/credentials"),
            "[default]\naws_access_key_id = filekey\naws_secret_access_key = filesecret\n",
        )
        .unwrap();
        let a = auth(
            &[
                ("AWS_ACCESS_KEY_ID", "envkey"),
                ("AWS_SECRET_ACCESS_KEY", "envsecret"),
                ("AWS_SESSION_TOKEN", "envtoken"),
            ],
            &home,
        );
        let c = a.credential().await.unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("envkey", Some("envtoken"))
        );
        let _ = std::fs::remove_dir_all(home);
    }

    #[tokio::test]
    async fn aws_profile_reads_the_shared_files() {
        let home = temp_home("profile");
        std::fs::write(
            home.join(".aws/credentials"),
            "[default]\naws_access_key_id = d\naws_secret_access_key = ds\n\
             [prod]\naws_access_key_id = prodkey\naws_secret_access_key = prodsecret\n",
        )
        .unwrap();
        std::fs::write(
            home.join(".aws/config"),
            "[profile staging]\naws_access_key_id = stagekey\naws_secret_access_key = stagesecret\n",
        )
        .unwrap();
        let c = auth(&[], &home).credential().await.unwrap();
        assert_eq!(c.access_key_id, "d", "no AWS_PROFILE: the default profile");
        let c = auth(&[("AWS_PROFILE", "prod")], &home)
            .credential()
            .await
            .unwrap();
        assert_eq!(c.access_key_id, "prodkey");
        let c = auth(&[("AWS_PROFILE", "staging")], &home)
            .credential()
            .await
            .unwrap();
        assert_eq!(c.access_key_id, "stagekey", "the config file's profile");
        let _ = std::fs::remove_dir_all(home);
    }

    #[tokio::test]
    async fn nothing_found_names_every_source_tried() {
        let home = temp_home("none");
        let err = auth(
            &[
                ("AWS_PROFILE", "missing"),
                ("AWS_ACCESS_KEY_ID", "only-half"),
            ],
            &home,
        )
        .credential()
        .await
        .unwrap_err()
        .to_string();
        for want in [
            "AWS_ACCESS_KEY_ID",
            "\"missing\"",
            "~/.aws/credentials",
            "~/.aws/config",
        ] {
            assert!(err.contains(want), "{want}: {err}");
        }
        assert!(!err.contains("only-half"), "{err}");
        let _ = std::fs::remove_dir_all(home);
    }
}
