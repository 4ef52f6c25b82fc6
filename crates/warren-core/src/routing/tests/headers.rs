//! Headers matching in all four x-match modes.

use bytes::Bytes;

use crate::routing::{HeadersIndex, headers_match, values_equal};
use crate::value::{Table, Value};

fn ls(s: &str) -> Value {
    Value::LongString(Bytes::from(s.to_owned()))
}

fn t(pairs: &[(&str, Value)]) -> Table {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// (x-match mode, binding arguments, expected match).
type Case<'a> = (&'a str, &'a [(&'a str, Value)], bool);

#[test]
fn four_modes() {
    let data = t(&[
        ("format", ls("pdf")),
        ("x-tenant", ls("a")),
        ("n", Value::I64(3)),
    ]);
    let cases: &[Case] = &[
        ("all", &[("format", ls("pdf")), ("n", Value::I32(3))], true),
        ("all", &[("format", ls("pdf")), ("n", Value::I32(4))], false),
        ("all", &[("format", ls("pdf")), ("missing", ls("x"))], false),
        // x- arguments are ignored by plain all/any ...
        ("all", &[("format", ls("pdf")), ("x-tenant", ls("b"))], true),
        ("any", &[("x-tenant", ls("a"))], false),
        (
            "any",
            &[("format", ls("doc")), ("n", Value::F64(3.0))],
            true,
        ),
        ("any", &[("format", ls("doc")), ("missing", ls("x"))], false),
        // ... and compared by the -with-x modes.
        (
            "all-with-x",
            &[("format", ls("pdf")), ("x-tenant", ls("b"))],
            false,
        ),
        (
            "all-with-x",
            &[("format", ls("pdf")), ("x-tenant", ls("a"))],
            true,
        ),
        ("any-with-x", &[("x-tenant", ls("a"))], true),
        ("any-with-x", &[("x-tenant", ls("b"))], false),
        // Void asks only for presence.
        ("all", &[("format", Value::Void), ("n", Value::Void)], true),
        ("all", &[("absent", Value::Void)], false),
        (
            "any",
            &[("absent", Value::Void), ("format", Value::Void)],
            true,
        ),
        // Nothing left to compare: all matches, any does not.
        ("all", &[], true),
        ("any", &[], false),
        ("all", &[("x-only", ls("1"))], true),
        ("any-with-x", &[], false),
    ];
    for (mode, pattern, expected) in cases {
        let mut args = t(pattern);
        args.insert("x-match".into(), ls(mode));
        assert_eq!(
            headers_match(&args, Some(&data)),
            *expected,
            "{mode} {pattern:?}"
        );
        // The index, prepared at bind time, agrees.
        let mut idx = HeadersIndex::default();
        idx.add(1u8, &args);
        let mut hit = false;
        idx.route(Some(&data), &mut |_| hit = true);
        assert_eq!(hit, *expected, "index: {mode} {pattern:?}");
    }
}

#[test]
fn missing_x_match_means_all_and_no_headers_means_empty() {
    let args = t(&[("a", ls("1")), ("b", ls("2"))]);
    assert!(headers_match(
        &args,
        Some(&t(&[("a", ls("1")), ("b", ls("2")), ("c", ls("3"))]))
    ));
    assert!(!headers_match(&args, Some(&t(&[("a", ls("1"))]))));
    assert!(!headers_match(&args, None));
    assert!(headers_match(&Table::new(), None));
}

#[test]
fn erlang_equality_of_values() {
    assert!(values_equal(&Value::I8(1), &Value::U32(1)));
    assert!(values_equal(&Value::I64(2), &Value::F64(2.0)));
    assert!(!values_equal(&Value::I64(2), &Value::F64(2.5)));
    assert!(values_equal(&Value::ShortString("s".into()), &ls("s")));
    assert!(!values_equal(&ls("1"), &Value::I32(1)));
    assert!(values_equal(&Value::Bool(true), &Value::Bool(true)));
    assert!(!values_equal(&Value::Bool(true), &Value::I32(1)));
    // Inside arrays the wire type takes part, as in Erlang's {Type, Value}.
    assert!(values_equal(
        &Value::Array(vec![Value::I32(1)]),
        &Value::Array(vec![Value::I32(1)])
    ));
    assert!(!values_equal(
        &Value::Array(vec![Value::I32(1)]),
        &Value::Array(vec![Value::I64(1)])
    ));
}

#[test]
fn index_remove_matches_on_arguments() {
    let mut idx = HeadersIndex::default();
    let a = t(&[("k", ls("1"))]);
    let b = t(&[("k", ls("1")), ("x-match", ls("any"))]);
    idx.add("q", &a);
    idx.add("q", &b);
    idx.remove(&"q", &a);
    let mut hits = 0;
    idx.route(Some(&t(&[("k", ls("1"))])), &mut |_| hits += 1);
    assert_eq!(hits, 1);
    idx.remove(&"q", &b);
    assert!(idx.is_empty());
}
