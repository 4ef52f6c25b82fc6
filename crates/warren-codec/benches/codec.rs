//! Throughput of the two hot paths: decoding what publishers send
//! (basic.publish + header + body) and encoding what consumers receive
//! (basic.deliver + header + body), against the generic encoder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use warren_codec::spec::basic;
use warren_codec::{
    AMQPClass, BasicProperties, decode_frame, encode_body, encode_deliver, encode_header,
    encode_method, encode_properties,
};

const FRAME_MAX: u32 = 131_072;
const SIZES: [usize; 3] = [16, 1024, 262_144];

fn raw_properties() -> BytesMut {
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id("4f1c2b7e-1d2a-4c1e-9a0b-7f2d9c1e3a55".into());
    let mut raw = BytesMut::new();
    encode_properties(&props, &mut raw);
    raw
}

/// 100 publishes of `size` bytes as a client would write them.
fn publishes(size: usize) -> BytesMut {
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "amq.topic".into(),
        routing_key: "orders.eu.created".into(),
        mandatory: false,
        immediate: false,
    }));
    let raw = raw_properties();
    let body = vec![b'x'; size];
    let mut out = BytesMut::new();
    for _ in 0..100 {
        encode_method(1, &publish, &mut out);
        encode_header(1, 60, size as u64, &raw, &mut out);
        encode_body(1, &body, FRAME_MAX, &mut out);
    }
    out
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_publish_x100");
    for size in SIZES {
        let wire = publishes(size);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &wire, |b, wire| {
            // The copy of the input is set-up, not measured.
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    while let Some(f) = decode_frame(&mut buf, FRAME_MAX).unwrap() {
                        black_box(f);
                    }
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn deliver(c: &mut Criterion) {
    let raw = raw_properties();
    let mut group = c.benchmark_group("encode_deliver");
    for size in SIZES {
        let body = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        let mut out = BytesMut::with_capacity(size + 4096);
        group.bench_with_input(BenchmarkId::new("hand-written", size), &body, |b, body| {
            b.iter(|| {
                out.clear();
                encode_deliver(
                    &mut out,
                    1,
                    FRAME_MAX,
                    "amq.ctag-Zx1",
                    42,
                    false,
                    "amq.topic",
                    "orders.eu.created",
                    &raw,
                    body,
                );
                black_box(&out);
            });
        });
        group.bench_with_input(BenchmarkId::new("generic", size), &body, |b, body| {
            b.iter(|| {
                out.clear();
                let m = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                    consumer_tag: "amq.ctag-Zx1".into(),
                    delivery_tag: 42,
                    redelivered: false,
                    exchange: "amq.topic".into(),
                    routing_key: "orders.eu.created".into(),
                }));
                encode_method(1, &m, &mut out);
                encode_header(1, 60, body.len() as u64, &raw, &mut out);
                encode_body(1, body, FRAME_MAX, &mut out);
                black_box(&out);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode, deliver);
criterion_main!(benches);
