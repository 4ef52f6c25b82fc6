//! The hot-path encoders allocate nothing of their own: with a buffer that
//! already has room, encode_deliver / get_ok / return make zero heap
//! allocations. Counted per thread, so other test threads do not disturb
//! the count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use warren_codec::{encode_deliver, encode_get_ok, encode_method, encode_return};

/// Allocations made by `f` on this thread (allocation-counter installs a
/// counting global allocator; the workspace forbids writing one here).
fn allocations_during(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

#[test]
fn content_encoders_do_not_allocate() {
    let props = [
        0x90, 0x00, 10, b't', b'e', b'x', b't', b'/', b'p', b'l', b'a', b'i', b'n', 2,
    ];
    let body = vec![0xAB; 300_000]; // three 128 KB body frames
    let mut out = BytesMut::with_capacity(1 << 20);
    let n = allocations_during(|| {
        for i in 0..100 {
            out.clear();
            encode_deliver(
                &mut out,
                1,
                131_072,
                "amq.ctag-1",
                i,
                false,
                "ex",
                "rk",
                &props,
                &body,
            );
            out.clear();
            encode_get_ok(&mut out, 1, 131_072, i, true, "ex", "rk", 7, &props, &body);
            out.clear();
            encode_return(
                &mut out, 1, 131_072, 312, "NO_ROUTE", "ex", "rk", &props, &body,
            );
        }
    });
    assert_eq!(n, 0);
}

/// The counter works: the generic path does allocate (its scratch Vec).
#[test]
fn the_counter_sees_allocations() {
    let method = warren_codec::AMQPClass::Basic(warren_codec::spec::basic::AMQPMethod::Ack(
        warren_codec::spec::basic::Ack {
            delivery_tag: 1,
            multiple: false,
        },
    ));
    let mut out = BytesMut::with_capacity(1024);
    assert!(allocations_during(|| encode_method(1, &method, &mut out)) > 0);
}
