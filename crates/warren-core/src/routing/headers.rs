//! Headers exchange: match message headers against binding arguments.
//!
//! Semantics are RabbitMQ's `rabbit_exchange_type_headers`:
//! - `x-match` is `all` (also when absent), `any`, `all-with-x` or
//!   `any-with-x`; any other value is refused at bind time.
//! - The `x-match` argument itself never takes part; other arguments whose
//!   name starts with `x-` take part only in the `-with-x` modes.
//! - An argument with a void value asks only that the header be present.
//! - Values compare as Erlang `==` does: by value, not by wire type (an
//!   `I32` 1 equals an `I64` 1 and a double 1.0; short and long strings
//!   with the same bytes are equal).
//! - `all` with no remaining arguments matches everything; `any` with none
//!   matches nothing.
//!
//! The pattern is filtered and parsed once at bind time.

use crate::value::{Table, Value};

/// The four `x-match` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XMatch {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

impl XMatch {
    /// The mode a binding's arguments ask for. Unknown values fall back to
    /// `all`, as RabbitMQ does for bindings created before it validated.
    pub fn of(args: &Table) -> Self {
        match args.get("x-match").and_then(string_value) {
            Some(b"any") => XMatch::Any,
            Some(b"all-with-x") => XMatch::AllWithX,
            Some(b"any-with-x") => XMatch::AnyWithX,
            _ => XMatch::All,
        }
    }

    fn with_x(self) -> bool {
        matches!(self, XMatch::AllWithX | XMatch::AnyWithX)
    }

    fn is_all(self) -> bool {
        matches!(self, XMatch::All | XMatch::AllWithX)
    }
}

fn string_value(v: &Value) -> Option<&[u8]> {
    match v {
        Value::ShortString(s) => Some(s.as_bytes()),
        Value::LongString(b) => Some(b),
        _ => None,
    }
}

/// Checks the `x-match` argument of a new headers binding. The error is the
/// reply text RabbitMQ sends with 406 PRECONDITION_FAILED (without prefix).
pub fn validate_headers_binding(args: &Table) -> Result<(), String> {
    let Some(v) = args.get("x-match") else {
        return Ok(());
    };
    match string_value(v) {
        Some(b"all" | b"any" | b"all-with-x" | b"any-with-x") => Ok(()),
        Some(other) => Err(format!(
            "Invalid x-match field value <<\"{}\">>; expected all, any, all-with-x, or any-with-x",
            String::from_utf8_lossy(other)
        )),
        None => Err(format!(
            "Invalid x-match field type {} (value {}); expected longstr",
            crate::meta::value_type_name(v),
            crate::meta::erlang_term(v)
        )),
    }
}

/// Erlang `==` on two field values, as the headers exchange compares them.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (string_value_any(a), string_value_any(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x.eq(&y);
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| typed_equal(p, q))
        }
        (Value::Table(x), Value::Table(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kp, p), (kq, q))| kp == kq && typed_equal(p, q))
        }
        _ => a == b,
    }
}

/// Inside arrays and tables Erlang compares `{Type, Value}` pairs, so the
/// wire type matters there.
fn typed_equal(a: &Value, b: &Value) -> bool {
    crate::meta::value_type_name(a) == crate::meta::value_type_name(b) && values_equal(a, b)
}

/// Bytes of any binary-valued field (strings and byte arrays are all
/// binaries in Erlang).
fn string_value_any(v: &Value) -> Option<&[u8]> {
    match v {
        Value::ByteArray(b) => Some(b),
        other => string_value(other),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    fn eq(&self, other: &Number) -> bool {
        match (*self, *other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b,
            (Number::Int(i), Number::Float(f)) | (Number::Float(f), Number::Int(i)) => {
                f.fract() == 0.0 && f.is_finite() && (i as f64) == f && (f as i128) == i
            }
        }
    }
}

fn number(v: &Value) -> Option<Number> {
    match v {
        Value::F32(f) => Some(Number::Float(f64::from(*f))),
        Value::F64(f) => Some(Number::Float(*f)),
        other => other
            .as_i64()
            .map(|i| Number::Int(i.into()))
            .or(match other {
                Value::Timestamp(t) => Some(Number::Int((*t).into())),
                _ => None,
            }),
    }
}

/// Does a message with `headers` satisfy the binding `args`?
pub fn headers_match(args: &Table, headers: Option<&Table>) -> bool {
    let mode = XMatch::of(args);
    let pattern = args
        .iter()
        .filter(|(k, _)| relevant(k, mode))
        .map(|(k, v)| (k.as_str(), v));
    match_pattern(mode, pattern, headers)
}

fn relevant(key: &str, mode: XMatch) -> bool {
    key != "x-match" && (mode.with_x() || !key.starts_with("x-"))
}

fn match_pattern<'a>(
    mode: XMatch,
    mut pattern: impl Iterator<Item = (&'a str, &'a Value)>,
    headers: Option<&Table>,
) -> bool {
    let one = |(k, want): (&str, &Value)| match headers.and_then(|h| h.get(k)) {
        None => false,
        Some(_) if matches!(want, Value::Void) => true,
        Some(have) => values_equal(want, have),
    };
    if mode.is_all() {
        pattern.all(one)
    } else {
        pattern.any(one)
    }
}

#[derive(Debug, Clone)]
struct HeadersBinding<D> {
    dest: D,
    /// The binding's arguments as given: the binding's identity.
    args: Table,
    mode: XMatch,
    /// Only the arguments that take part in matching.
    pattern: Vec<(String, Value)>,
}

/// The bindings of one headers exchange.
#[derive(Debug, Clone)]
pub struct HeadersIndex<D> {
    bindings: Vec<HeadersBinding<D>>,
}

impl<D> Default for HeadersIndex<D> {
    fn default() -> Self {
        HeadersIndex {
            bindings: Vec::new(),
        }
    }
}

impl<D: Ord + Clone> HeadersIndex<D> {
    pub fn add(&mut self, dest: D, args: &Table) {
        let mode = XMatch::of(args);
        let pattern = args
            .iter()
            .filter(|(k, _)| relevant(k, mode))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.bindings.push(HeadersBinding {
            dest,
            args: args.clone(),
            mode,
            pattern,
        });
    }

    pub fn remove(&mut self, dest: &D, args: &Table) {
        if let Some(i) = self
            .bindings
            .iter()
            .position(|b| &b.dest == dest && &b.args == args)
        {
            self.bindings.remove(i);
        }
    }

    pub fn route<'a, F: FnMut(&'a D)>(&'a self, headers: Option<&Table>, f: &mut F) {
        for b in &self.bindings {
            let pattern = b.pattern.iter().map(|(k, v)| (k.as_str(), v));
            if match_pattern(b.mode, pattern, headers) {
                f(&b.dest);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}
