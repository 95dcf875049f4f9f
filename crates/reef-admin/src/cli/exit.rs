//! How the `reef` command fails: the error types it raises itself, the
//! DESIGN §6 exit code of any error, and the stderr report (one line
//! first, then `  caused by:` details).
//!
//! Exit codes: 0 ok; 1 not found; 2 bad input or usage; 3 precondition
//! failed, idempotency conflict, or a repair that would give up data; 4
//! verify found problems; 65 stored data is damaged; 70 storage or
//! internal error; 75 temporary (retry). A closed stdout is not an error at all: the reader went
//! away (`reef scan x | head -1`), so the command stops quietly with 0.

use std::fmt;
use std::io::Write as _;

/// Exit code for a document or object that is not there.
pub const NOT_FOUND: u8 = 1;
/// Exit code for bad input or usage.
pub const BAD_INPUT: u8 = 2;
/// Exit code for a failed precondition or a reused idempotency key.
pub const CONFLICT: u8 = 3;
/// Exit code for `verify` finding problems.
pub const VERIFY_FAILED: u8 = 4;
/// Exit code for storage and internal errors (sysexits' EX_SOFTWARE).
pub const INTERNAL: u8 = 70;
/// Stored data is damaged (sysexits' `EX_DATAERR`): retrying cannot help;
/// `reef verify` says what, `reef repair` fixes what can be fixed.
pub const CORRUPT: u8 = 65;
/// Temporary: overloaded, contention, a stale writer fenced, storage
/// unreachable. Retry (an idempotency key makes a retried write safe).
pub const TEMPORARY: u8 = 75;

/// Input the command refused before touching the store: the message names
/// the input line and field (`line 3: field "op": unknown op ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// What was asked for does not exist (`reef get` of a missing id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound(pub String);

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// An engine error about one op of the input, with the op's input line.
#[derive(Debug)]
pub struct AtLine {
    /// 1-based line of the op in the input.
    pub line: usize,
    /// What the engine said (it names the op index).
    pub error: reef_engine::Error,
}

impl fmt::Display for AtLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (input line {})", self.error, self.line)
    }
}

// No `source`: the engine error is already part of the one-line message.
impl std::error::Error for AtLine {}

/// A scan that failed after it had printed documents. Its output is a
/// prefix of the answer, so even a temporary cause is not "retry": a
/// script that retried and appended would print those documents twice.
#[derive(Debug)]
pub struct PartialScan {
    /// Documents printed before the failure.
    pub printed: u64,
    /// Why it stopped.
    pub error: reef_engine::Error,
}

impl fmt::Display for PartialScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the scan stopped after {} documents, so its output is incomplete: {}; \
             re-run it (--from the id after the last one printed), or scan a checkpoint \
             (--at), which maintenance cannot collect",
            self.printed, self.error
        )
    }
}

// No `source`: the engine error is already part of the one-line message.
impl std::error::Error for PartialScan {}

/// The DESIGN §6 exit code of an error: the first cause in the chain that
/// says what kind of failure it is decides.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<InputError>() || cause.is::<crate::rebuild::HasManifest>() {
            return BAD_INPUT;
        }
        if cause.is::<NotFound>() {
            return NOT_FOUND;
        }
        if cause.is::<super::verify::VerifyFailed>() {
            return VERIFY_FAILED;
        }
        if cause.is::<super::repair::RepairRefused>() {
            return CONFLICT;
        }
        if cause.is::<crate::repair::Raced>() {
            return TEMPORARY;
        }
        if let Some(p) = cause.downcast_ref::<PartialScan>() {
            return match engine_code(&p.error) {
                TEMPORARY => INTERNAL,
                code => code,
            };
        }
        if let Some(at) = cause.downcast_ref::<AtLine>() {
            return engine_code(&at.error);
        }
        if let Some(e) = cause.downcast_ref::<reef_engine::Error>() {
            return engine_code(e);
        }
        if let Some(e) = cause.downcast_ref::<reef_manifest::Error>() {
            return match e {
                reef_manifest::Error::CheckpointExists { .. } => CONFLICT,
                reef_manifest::Error::InvalidUrl { .. }
                | reef_manifest::Error::InvalidKey { .. }
                | reef_manifest::Error::InvalidName { .. } => BAD_INPUT,
                e if e.is_transient() => TEMPORARY,
                reef_manifest::Error::Inconsistent { .. } => CORRUPT,
                reef_manifest::Error::Format(f) if f.is_corruption() => CORRUPT,
                _ => INTERNAL,
            };
        }
        if let Some(f) = cause.downcast_ref::<reef_format::FormatError>() {
            if let reef_format::FormatError::Invalid { .. } = f {
                return BAD_INPUT;
            }
            if f.is_corruption() {
                return CORRUPT;
            }
        }
    }
    INTERNAL
}

fn engine_code(e: &reef_engine::Error) -> u8 {
    match e.kind() {
        reef_engine::ErrorKind::Invalid => BAD_INPUT,
        reef_engine::ErrorKind::Conflict => CONFLICT,
        reef_engine::ErrorKind::Transient => TEMPORARY,
        reef_engine::ErrorKind::Corrupt => CORRUPT,
        _ => INTERNAL,
    }
}

/// Whether the error is stdout closing under us (`reef ... | head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes the error to stderr (see `render`). A closed stderr is ignored:
/// there is nobody to tell.
pub fn report(err: &anyhow::Error) {
    let _ = std::io::stderr().lock().write_all(render(err).as_bytes());
}

/// `error: ...`, then one `  caused by: ...` line per cause that says
/// something new: many errors already print their source in their own
/// message (`get ns/a/HEAD: permission denied`), and the chain would
/// repeat it.
fn render(err: &anyhow::Error) -> String {
    let mut said = one_line(&err.to_string());
    let mut text = format!("error: {said}\n");
    for cause in err.chain().skip(1) {
        let cause = one_line(&cause.to_string());
        if !said.contains(&cause) {
            text.push_str(&format!("  caused by: {cause}\n"));
            said.push_str(&cause);
        }
    }
    if let Some(hint) = hint(err) {
        text.push_str(&format!("hint: {hint}\n"));
    }
    text
}

/// The command that fixes what an operator has to fix, if any.
fn hint(err: &anyhow::Error) -> Option<String> {
    let engine = err.chain().find_map(|c| {
        c.downcast_ref::<reef_engine::Error>()
            .or_else(|| c.downcast_ref::<AtLine>().map(|a| &a.error))
    })?;
    match engine {
        reef_engine::Error::Overloaded { namespace, .. } => Some(format!(
            "nothing folded {namespace} in time: run `reef flush {namespace}`, or keep \
             `reef compactor --namespace {namespace}` running"
        )),
        e if e.kind() == reef_engine::ErrorKind::Corrupt => Some(
            "stored data is damaged: `reef verify <namespace>` names what, and `reef repair \
             <namespace> --dry-run` shows what can be fixed"
                .to_owned(),
        ),
        _ => None,
    }
}

/// Keeps the first line of a report a single line whatever a message holds.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scan that printed documents and then met a collected segment is
    /// not "retry" (75): its output is already a prefix of the answer.
    #[test]
    fn a_partial_scan_is_never_temporary() {
        let collected = reef_engine::Error::Store(reef_manifest::Error::NotFound {
            key: "ns/a/seg/00.seg".to_owned(),
        });
        assert_eq!(exit_code(&anyhow::Error::new(collected.clone())), TEMPORARY);
        let partial = PartialScan {
            printed: 3,
            error: collected,
        };
        let err = anyhow::Error::new(partial);
        assert_eq!(exit_code(&err), INTERNAL);
        assert!(
            render(&err).contains("after 3 documents"),
            "{}",
            render(&err)
        );
    }

    /// The store's I/O error names its cause in its own message and as its
    /// source; the report says it once. Context added on top still shows
    /// the whole chain.
    #[test]
    fn a_cause_already_said_is_not_repeated() {
        let io = reef_manifest::Error::Io {
            op: "get",
            key: "ns/a/HEAD".to_owned(),
            source: std::sync::Arc::new(std::io::Error::other("disk on fire")),
        };
        let text = render(&anyhow::Error::new(io));
        assert_eq!(text.matches("disk on fire").count(), 1, "{text}");
        let wrapped = anyhow::Error::new(std::io::Error::other("disk on fire"))
            .context("reading the namespace");
        let text = render(&wrapped);
        assert_eq!(
            text,
            "error: reading the namespace\n  caused by: disk on fire\n"
        );
    }

    #[test]
    fn codes_follow_the_first_typed_cause() {
        let input = anyhow::Error::new(InputError("line 1: bad".into()));
        assert_eq!(exit_code(&input), BAD_INPUT);
        let missing = anyhow::Error::new(NotFound("no".into())).context("get");
        assert_eq!(exit_code(&missing), NOT_FOUND);
        let conflict = anyhow::Error::new(reef_engine::Error::IdempotencyConflict {
            namespace: "n".into(),
            key: "k".into(),
        });
        assert_eq!(exit_code(&conflict), CONFLICT);
        let contention = anyhow::Error::new(reef_engine::Error::Contention {
            namespace: "n".into(),
            attempts: 3,
        });
        assert_eq!(exit_code(&contention), TEMPORARY);
        let url = anyhow::Error::new(reef_manifest::Error::InvalidUrl {
            url: "ftp://x".into(),
            reason: "unknown scheme".into(),
        });
        assert_eq!(exit_code(&url), BAD_INPUT);
        assert_eq!(exit_code(&anyhow::anyhow!("boom")), INTERNAL);
    }

    #[test]
    fn broken_pipe_is_recognised_through_context() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let err = anyhow::Error::new(io).context("writing");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
