//! `reef verify [<ns>] [--deep] [--json]`: runs [`crate::verify`] on one
//! namespace or all, prints a readable report (or one JSON object per
//! namespace), and fails with exit 4 when anything is wrong. It opens no
//! engine: a namespace an engine would refuse to open is exactly what it
//! must be able to look at.

use std::fmt;

use anyhow::Result;
use reef_manifest::SystemClock;
use reef_manifest::layout::NAMESPACES_PREFIX;
use reef_manifest::store::DynStore;

use super::output::Out;
use crate::verify::{Report, verify};

/// Verify found problems (exit 4).
#[derive(Debug)]
pub struct VerifyFailed {
    problems: usize,
    namespaces: usize,
}

impl fmt::Display for VerifyFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verify found {} problem(s) in {} namespace(s); see the report above",
            self.problems, self.namespaces
        )
    }
}

impl std::error::Error for VerifyFailed {}

impl VerifyFailed {
    /// `problems` found in `namespaces` namespaces.
    pub fn new(problems: usize, namespaces: usize) -> VerifyFailed {
        VerifyFailed {
            problems,
            namespaces,
        }
    }
}

/// Runs the command.
pub async fn run(store: DynStore, ns: Option<&str>, deep: bool, json: bool) -> Result<()> {
    let names = match ns {
        Some(ns) => {
            super::repair::ensure_exists(&store, ns).await?;
            vec![ns.to_owned()]
        }
        None => {
            let mut names = store.list_dirs(NAMESPACES_PREFIX).await?;
            // Not Reef's (a stray directory): nothing to verify.
            names.retain(|n| reef_manifest::layout::validate_namespace(n).is_ok());
            names
        }
    };
    let mut out = Out::new();
    let (mut problems, mut unclean) = (0, 0);
    for name in &names {
        let bar = super::output::byte_progress(&format!("verify {name}"));
        let report = verify(&store, name, deep, &SystemClock, Some(bar.clone())).await?;
        bar.finish_and_clear();
        if json {
            out.line(&report_json(&report))?;
        } else {
            for line in report_text(&report, deep) {
                out.text(&line)?;
            }
        }
        if !report.clean() {
            problems += report.problems.len();
            unclean += 1;
        }
    }
    out.finish()?;
    if problems > 0 {
        return Err(VerifyFailed {
            problems,
            namespaces: unclean,
        }
        .into());
    }
    Ok(())
}

/// One namespace's report as one JSON object: the report's fields and
/// whether it is clean.
pub fn report_json(r: &Report) -> serde_json::Value {
    #[derive(serde::Serialize)]
    struct Json<'a> {
        clean: bool,
        #[serde(flatten)]
        report: &'a Report,
    }
    super::compactor::to_json(&Json {
        clean: r.clean(),
        report: r,
    })
}

/// One namespace's report as text: a summary line, then one line per
/// problem and note, each naming its object.
pub fn report_text(r: &Report, deep: bool) -> Vec<String> {
    let checked: Vec<String> = r.checked.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let mut lines = vec![format!(
        "namespace {}: {}; manifest {}; checked {}{}; {} bytes read",
        r.namespace,
        if r.clean() {
            "clean".to_owned()
        } else {
            format!("{} problem(s)", r.problems.len())
        },
        r.current_version
            .map_or("none".to_owned(), |v| v.to_string()),
        if checked.is_empty() {
            "nothing".to_owned()
        } else {
            checked.join(", ")
        },
        if deep { " (deep)" } else { "" },
        r.bytes_read,
    )];
    lines.extend(
        r.problems
            .iter()
            .map(|f| format!("  PROBLEM {}: {}", f.key, f.what)),
    );
    lines.extend(
        r.notes
            .iter()
            .map(|f| format!("  note    {}: {}", f.key, f.what)),
    );
    lines
}
