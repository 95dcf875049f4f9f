//! `reef write` input: JSON lines, one op per line, parsed and validated
//! in full before anything touches the store.
//!
//! ```text
//! {"op":"upsert","id":"u1","doc":{"name":"ada"},"if":"absent"}
//! {"op":"patch","id":"u1","doc":{"age":36},"if":{"version":7}}
//! {"op":"delete","id":"u2","if":"exists"}
//! ```
//! Keys are exactly `op`, `id`, `doc` (upsert and patch only) and `if`
//! (optional: `"absent"`, `"exists"` or `{"version": N}`; `null` is
//! refused rather than read as "no precondition"). Blank lines are
//! ignored; all other lines form one atomic request. Every refusal is
//! an [`InputError`] naming the line and field, e.g.
//! `line 3: field "op": unknown op "upsrt" (expected upsert, patch or delete)`.
//! A key given twice in one object (in the op or in its document) is
//! refused, never resolved silently.
//!
//! Input is read as a stream and bounded while it is read ([`InputBounds`]):
//! an endless or huge input stops at a limit with a clear error, with
//! memory bounded by the limits, and nothing is written.

use std::io::BufRead;

use reef_format::{
    CheckedRequest, FormatError, Limits, Op, OpKind, Precondition, WriteRequest,
    document_from_json, parse_json,
};
use serde_json::{Map, Value as Json};

use super::exit::InputError;

/// A request parsed from input, with the input line of each op.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedRequest {
    /// The request, checked (and its documents encoded) against the
    /// limits it was parsed with.
    pub request: CheckedRequest,
    /// `lines[i]` is the 1-based input line of `request.ops[i]`.
    pub lines: Vec<usize>,
}

impl ParsedRequest {
    /// The input line of op `index`, if there is such an op.
    pub fn line_of(&self, index: usize) -> Option<usize> {
        self.lines.get(index).copied()
    }
}

/// How much `reef write` reads before refusing, derived from the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputBounds {
    /// Longest line: one op's JSON text. A document's JSON text can be
    /// several times its encoding (escapes), so eight times the document
    /// and id limits, plus room for the op's own keys.
    pub line_bytes_max: usize,
    /// All input: twice the request limit, as text.
    pub input_bytes_max: usize,
    /// Most ops (the request limit).
    pub ops_max: usize,
    /// Most lines, blank ones included (twice the op limit): a flood of
    /// blank lines ends quickly too.
    pub lines_max: usize,
}

impl InputBounds {
    /// The bounds that go with `limits`.
    pub fn for_limits(limits: &Limits) -> InputBounds {
        InputBounds {
            line_bytes_max: 8 * (limits.doc_bytes_max + limits.id_bytes_max) + 4096,
            input_bytes_max: 2 * limits.request_bytes_max,
            ops_max: limits.ops_per_request_max,
            lines_max: 2 * limits.ops_per_request_max,
        }
    }
}

/// Reads and validates JSON-lines `input` into one request carrying
/// `idempotency_key`, against `limits` (the engine's own), stopping at the
/// first line or byte past [`InputBounds::for_limits`].
pub fn parse_request(
    mut input: impl BufRead,
    idempotency_key: Option<String>,
    limits: &Limits,
) -> Result<ParsedRequest, InputError> {
    use std::io::Read as _;
    let bounds = InputBounds::for_limits(limits);
    let mut ops = Vec::new();
    let mut lines = Vec::new();
    let mut total = 0usize;
    let mut raw = Vec::new();
    for line in 1.. {
        raw.clear();
        let cap = (bounds.line_bytes_max + 1) as u64;
        let n = (&mut input)
            .take(cap)
            .read_until(b'\n', &mut raw)
            .map_err(|e| InputError(format!("line {line}: cannot read input: {e}")))?;
        if n == 0 {
            break;
        }
        if line > bounds.lines_max {
            return Err(InputError(format!(
                "input: more than {} lines, most of them blank (twice the op limit)",
                bounds.lines_max
            )));
        }
        total += n;
        if raw.len() > bounds.line_bytes_max {
            return Err(InputError(format!(
                "line {line}: longer than {} bytes, the most one op's JSON may take \
                 (8 x (doc_bytes_max + id_bytes_max) + 4 KiB)",
                bounds.line_bytes_max
            )));
        }
        if total > bounds.input_bytes_max {
            return Err(InputError(format!(
                "input: more than {} bytes by line {line} (twice request_bytes_max): \
                 split it into several requests",
                bounds.input_bytes_max
            )));
        }
        let text = std::str::from_utf8(&raw)
            .map_err(|e| InputError(format!("line {line}: not valid UTF-8 ({e})")))?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        if ops.len() == bounds.ops_max {
            return Err(InputError(format!(
                "line {line}: more than {} ops, the limit of one request: split the input \
                 into several requests",
                bounds.ops_max
            )));
        }
        ops.push(parse_op(line, text)?);
        lines.push(line);
    }
    if ops.is_empty() {
        return Err(InputError(
            "input: no ops; expected one JSON op per line, e.g. \
             {\"op\":\"upsert\",\"id\":\"u1\",\"doc\":{}}"
                .to_owned(),
        ));
    }
    let request = WriteRequest {
        ops,
        idempotency_key,
    };
    let request = request.check(limits).map_err(|e| explain(e, &lines))?;
    let parsed = ParsedRequest { request, lines };
    Ok(parsed)
}

/// Parses one non-blank line into an op.
fn parse_op(line: usize, text: &str) -> Result<Op, InputError> {
    let json: Json = parse_json(text).map_err(|e| {
        let message = e.to_string();
        // serde_json appends "at line 1 column N"; the line is ours to name.
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        if message.starts_with("duplicate key") {
            InputError(format!(
                "line {line}: {message} (column {}): each key may appear once",
                e.column()
            ))
        } else {
            InputError(format!(
                "line {line}: malformed JSON at column {}: {message}",
                e.column()
            ))
        }
    })?;
    let Json::Object(map) = json else {
        return Err(InputError(format!(
            "line {line}: expected a JSON object like {{\"op\":\"upsert\",\"id\":..,\"doc\":{{..}}}}, \
             found {}",
            reef_format::json_type_name(&json)
        )));
    };
    let field =
        |name: &str, reason: String| InputError(format!("line {line}: field {name:?}: {reason}"));
    if let Some(unknown) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "op" | "id" | "doc" | "if"))
    {
        return Err(field(
            unknown,
            "unknown field (expected op, id, doc and if)".to_owned(),
        ));
    }
    let kind = match required_str(&map, "op").map_err(|r| field("op", r))? {
        "upsert" => OpKind::Upsert,
        "patch" => OpKind::Patch,
        "delete" => OpKind::Delete,
        other => {
            return Err(field(
                "op",
                format!("unknown op {other:?} (expected upsert, patch or delete)"),
            ));
        }
    };
    let id = required_str(&map, "id")
        .map_err(|r| field("id", r))?
        .to_owned();
    let doc = match (kind, map.get("doc")) {
        (OpKind::Delete, None) => None,
        (OpKind::Delete, Some(_)) => {
            return Err(field("doc", "delete takes no doc".to_owned()));
        }
        (_, None) => {
            return Err(field(
                "doc",
                format!("missing ({} needs a doc)", kind.name()),
            ));
        }
        (_, Some(json)) => Some(document_from_json(json, "doc").map_err(|e| at_line(line, e))?),
    };
    let precondition = match map.get("if") {
        None => None,
        Some(json) => Some(parse_if(json).map_err(|r| field("if", r))?),
    };
    Ok(Op {
        kind,
        id,
        doc,
        precondition,
    })
}

fn required_str<'a>(map: &'a Map<String, Json>, key: &str) -> Result<&'a str, String> {
    match map.get(key) {
        None => Err("missing".to_owned()),
        Some(Json::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "must be a string, found {}",
            reef_format::json_type_name(other)
        )),
    }
}

/// `"absent"`, `"exists"` or `{"version": N}`.
fn parse_if(json: &Json) -> Result<Precondition, String> {
    let expected = "expected \"absent\", \"exists\" or {\"version\": N}";
    match json {
        Json::String(s) if s == "absent" => Ok(Precondition::Absent),
        Json::String(s) if s == "exists" => Ok(Precondition::Exists),
        Json::Object(map) if map.len() == 1 => match map.get("version") {
            Some(Json::Number(n)) => n
                .as_u64()
                .map(Precondition::Version)
                .ok_or_else(|| format!("{expected}; version {n} is not a non-negative integer")),
            _ => Err(format!("{expected}, found {json}")),
        },
        _ => Err(format!("{expected}, found {json}")),
    }
}

/// A codec refusal of one line's field (`doc`, `doc.a.b`, `id`).
fn at_line(line: usize, e: FormatError) -> InputError {
    match e {
        FormatError::Invalid { field, reason } => {
            InputError(format!("line {line}: field {field:?}: {reason}"))
        }
        other => InputError(format!("line {line}: {other}")),
    }
}

/// Turns a `WriteRequest::validate` refusal (fields like `ops[3].doc.f`)
/// into one naming the input line.
fn explain(e: FormatError, lines: &[usize]) -> InputError {
    let line_of = |i: usize| lines.get(i).copied();
    let FormatError::Invalid { field, reason } = e else {
        return InputError(format!("input: {e}"));
    };
    if field == "idempotency_key" {
        return InputError(format!("--idempotency-key: {reason}"));
    }
    match split_op_field(&field) {
        Some((index, rest)) => match line_of(index) {
            Some(line) => at_line(
                line,
                FormatError::Invalid {
                    field: rest.to_owned(),
                    reason,
                },
            ),
            None => InputError(format!("input: field {field:?}: {reason}")),
        },
        None => {
            // Request-wide limits name the op where they were crossed.
            let reason = match reason.rsplit_once(" at ops[") {
                Some((head, tail)) => {
                    let index = tail.trim_end_matches(']').parse::<usize>().ok();
                    match index.and_then(line_of) {
                        Some(line) => format!("{head} at line {line}"),
                        None => reason.clone(),
                    }
                }
                None => reason,
            };
            InputError(format!("input: {field}: {reason}"))
        }
    }
}

/// `ops[3].doc.f` -> `(3, "doc.f")`.
pub(crate) fn split_op_field(field: &str) -> Option<(usize, &str)> {
    let rest = field.strip_prefix("ops[")?;
    let (index, rest) = rest.split_once(']')?;
    let index = index.parse().ok()?;
    Some((index, rest.strip_prefix('.').unwrap_or(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ParsedRequest, String> {
        parse_request(text.as_bytes(), None, &Limits::default()).map_err(|e| e.0)
    }

    #[test]
    fn parses_every_op_and_precondition() {
        let text = "\n{\"op\":\"upsert\",\"id\":\"u1\",\"doc\":{\"n\":1},\"if\":\"absent\"}\n\
                    \r\n{\"op\":\"patch\",\"id\":\"u1\",\"doc\":{\"n\":null},\"if\":{\"version\":7}}\n\
                    {\"op\":\"delete\",\"id\":\"u2\",\"if\":\"exists\"}\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.lines, vec![2, 4, 5]);
        let ops = &parsed.request.request().ops;
        assert_eq!(ops[0].kind, OpKind::Upsert);
        assert_eq!(ops[0].precondition, Some(Precondition::Absent));
        assert_eq!(ops[1].precondition, Some(Precondition::Version(7)));
        assert_eq!(ops[2].doc, None);
        assert_eq!(ops[2].precondition, Some(Precondition::Exists));
    }

    #[test]
    fn errors_name_line_and_field() {
        let ok = "{\"op\":\"upsert\",\"id\":\"a\",\"doc\":{}}\n";
        let cases = [
            (
                "{\"op\":\"upsrt\",\"id\":\"a\",\"doc\":{}}",
                "field \"op\": unknown op \"upsrt\"",
            ),
            ("{\"op\":\"upsert\",\"doc\":{}}", "field \"id\": missing"),
            ("{\"op\":\"upsert\",\"id\":\"a\"}", "field \"doc\": missing"),
            (
                "{\"op\":\"upsert\",\"id\":\"a\",\"doc\":3}",
                "field \"doc\": must be a JSON object",
            ),
            (
                "{\"op\":\"delete\",\"id\":\"a\",\"x\":1}",
                "field \"x\": unknown field",
            ),
            (
                "{\"op\":\"delete\",\"id\":\"a\",\"if\":\"maybe\"}",
                "field \"if\": expected",
            ),
            (
                "{\"op\":\"delete\",\"id\":\"a\",\"if\":{\"version\":-1}}",
                "field \"if\"",
            ),
            (
                "{\"op\":\"delete\",\"id\":\"\"}",
                "field \"id\": id is empty",
            ),
            ("{\"op\":", "malformed JSON at column"),
            ("[1]", "expected a JSON object"),
            (
                "{\"op\":\"delete\",\"op\":\"upsert\",\"id\":\"a\",\"doc\":{}}",
                "duplicate key \"op\"",
            ),
            (
                "{\"op\":\"upsert\",\"id\":\"a\",\"doc\":{\"x\":1,\"y\":{\"z\":1,\"z\":2}}}",
                "duplicate key \"z\"",
            ),
        ];
        for (bad, want) in cases {
            let err = parse(&format!("{ok}{bad}\n")).unwrap_err();
            assert!(err.starts_with("line 2: "), "{bad}: {err}");
            assert!(err.contains(want), "{bad}: {err}");
        }
        assert!(parse(" \n\n").unwrap_err().starts_with("input: no ops"));
    }

    #[test]
    fn input_is_bounded_while_it_is_read() {
        let limits = Limits {
            ops_per_request_max: 3,
            doc_bytes_max: 64,
            id_bytes_max: 8,
            request_bytes_max: 1024,
            ..Limits::default()
        };
        let bounds = InputBounds::for_limits(&limits);
        let parse = |input: &[u8]| parse_request(input, None, &limits).map_err(|e| e.0);
        // An endless line (think /dev/zero) stops at the line bound.
        let zeros = std::io::Read::take(std::io::repeat(0), u64::MAX);
        let err = parse_request(std::io::BufReader::new(zeros), None, &limits)
            .unwrap_err()
            .0;
        assert!(err.starts_with("line 1: longer than"), "{err}");
        // Endless ops stop at the op limit.
        let op = b"{\"op\":\"delete\",\"id\":\"a\"}\n";
        // An op, then blank lines without end, stops at the line bound.
        let blank_tail = std::io::Read::chain(&op[..], std::io::repeat(b'\n'));
        let huge = std::io::Read::take(blank_tail, 2 * bounds.input_bytes_max as u64);
        let err = parse_request(std::io::BufReader::new(huge), None, &limits)
            .unwrap_err()
            .0;
        assert!(err.starts_with("input: more than 6 lines"), "{err}");
        // Long (blank) lines stop at the byte bound.
        let padded = format!("{:width$}\n", "", width = bounds.line_bytes_max - 1);
        let err = parse(padded.repeat(5).as_bytes()).unwrap_err();
        assert!(err.starts_with("input: more than"), "{err}");
        assert!(err.contains("bytes"), "{err}");
        let many = op.repeat(5);
        let err = parse(&many).unwrap_err();
        assert!(err.starts_with("line 4: more than 3 ops"), "{err}");
    }

    #[test]
    fn limits_name_the_line() {
        let long = "x".repeat(1025);
        let text = format!(
            "{{\"op\":\"delete\",\"id\":\"a\"}}\n{{\"op\":\"delete\",\"id\":\"{long}\"}}\n"
        );
        let err = parse(&text).unwrap_err();
        assert!(
            err.starts_with("line 2: field \"id\": id is 1025 bytes"),
            "{err}"
        );
        let key = parse_request(
            &b"{\"op\":\"delete\",\"id\":\"a\"}"[..],
            Some(String::new()),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(key.0.starts_with("--idempotency-key"), "{}", key.0);
        assert_eq!(split_op_field("ops[12].doc.a"), Some((12, "doc.a")));
        assert_eq!(split_op_field("ops"), None);
    }
}
