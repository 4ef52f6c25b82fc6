//! QueueConfig::from_arguments: values and RabbitMQ's error texts.

use bytes::Bytes;

use super::*;
use crate::value::{Table, Value};

fn table(entries: &[(&str, Value)]) -> Table {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn text(s: &str) -> Value {
    Value::LongString(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn parses_every_supported_argument() {
    let args = table(&[
        ("x-message-ttl", Value::I32(60_000)),
        ("x-max-length", Value::I64(10)),
        ("x-max-length-bytes", Value::U16(4096)),
        ("x-overflow", text("reject-publish-dlx")),
        ("x-dead-letter-exchange", text("")),
        ("x-delivery-limit", Value::I8(5)),
        ("x-single-active-consumer", Value::Bool(true)),
        ("x-max-priority", Value::U8(10)),
        ("x-queue-type", text("quorum")),
    ]);
    let expected = QueueConfig {
        message_ttl_ms: Some(60_000),
        max_length: Some(10),
        max_length_bytes: Some(4096),
        overflow: Overflow::RejectPublishDlx,
        dead_letter: true,
        delivery_limit: Some(5),
        single_active_consumer: true,
        max_priority: Some(10),
    };
    assert_eq!(QueueConfig::from_arguments(&args), Ok(expected));
    assert_eq!(
        QueueConfig::from_arguments(&Table::new()),
        Ok(QueueConfig::default())
    );
}

#[test]
fn negative_delivery_limit_means_unlimited() {
    let args = table(&[("x-delivery-limit", Value::I32(-1))]);
    assert_eq!(
        QueueConfig::from_arguments(&args).map(|c| c.delivery_limit),
        Ok(None)
    );
}

fn error_text(key: &str, value: Value) -> String {
    match QueueConfig::from_declare(&table(&[(key, value)]), "/", "q") {
        Err(e) => {
            assert_eq!(e.reply_code(), 406);
            e.to_string()
        }
        Ok(c) => panic!("accepted {c:?}"),
    }
}

#[test]
fn invalid_values_get_rabbitmq_texts() {
    let prefix = "PRECONDITION_FAILED - invalid arg";
    let cases = [
        ("x-max-length", Value::I32(-1), "{value_negative,-1}"),
        (
            "x-message-ttl",
            text("60"),
            "\"expected integer, got longstr\"",
        ),
        (
            "x-message-ttl",
            Value::I64(4_294_967_296),
            "{value_too_big,4294967296}",
        ),
        (
            "x-max-length-bytes",
            Value::Bool(true),
            "\"expected integer, got bool\"",
        ),
        ("x-overflow", text("drop-tail"), "invalid_overflow"),
        ("x-overflow", Value::I32(1), "{unacceptable_type,signedint}"),
        (
            "x-single-active-consumer",
            text("true"),
            "{unacceptable_type,longstr}",
        ),
        (
            "x-dead-letter-exchange",
            Value::I16(3),
            "{unacceptable_type,short}",
        ),
        (
            "x-delivery-limit",
            Value::F64(1.5),
            "\"expected integer, got double\"",
        ),
    ];
    for (key, value, reason) in cases {
        let expected = format!("{prefix} '{key}' for queue 'q' in vhost '/': {reason}");
        assert_eq!(error_text(key, value), expected);
    }
}

#[test]
fn unnamed_error_still_reads() {
    let args = table(&[("x-max-length", Value::I32(-2))]);
    let err = QueueConfig::from_arguments(&args)
        .err()
        .map(|e| e.to_string());
    let expected =
        "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue: {value_negative,-2}";
    assert_eq!(err.as_deref(), Some(expected));
}

#[test]
fn max_priority_accepts_0_to_255() {
    let parse = |v: Value| {
        QueueConfig::from_arguments(&table(&[("x-max-priority", v)])).map(|c| c.max_priority)
    };
    assert_eq!(parse(Value::U8(10)), Ok(Some(10)));
    assert_eq!(parse(Value::I32(255)), Ok(Some(255)));
    // RabbitMQ accepts 0: one level, i.e. a plain FIFO.
    assert_eq!(parse(Value::I64(0)), Ok(Some(0)));
    assert_eq!(QueueConfig::default().max_priority, None);
}

#[test]
fn invalid_max_priority_gets_rabbitmq_texts() {
    let prefix = "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/'";
    let cases = [
        (Value::I32(256), "{max_value_exceeded,256}"),
        (Value::I64(1 << 40), "{max_value_exceeded,1099511627776}"),
        (Value::I16(-1), "{value_negative,-1}"),
        (text("10"), "\"expected integer, got longstr\""),
        (Value::F32(5.0), "\"expected integer, got float\""),
    ];
    for (value, reason) in cases {
        assert_eq!(
            error_text("x-max-priority", value),
            format!("{prefix}: {reason}")
        );
    }
}
