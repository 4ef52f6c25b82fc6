//! The generated types encode and decode, and bytes fields slice the input
//! buffer rather than copying it (what keeps message bodies zero-copy).

use bytes::Bytes;
use prost::Message as _;
use warren_rpc::log;

#[test]
fn log_entry_roundtrips_and_bodies_are_slices() {
    let body = Bytes::from(vec![7u8; 4096]);
    let proposal = log::Proposal {
        now_ms: 42,
        command: Some(log::proposal::Command::Queue(log::QueueCommand {
            command: Some(log::queue_command::Command::Enqueue(
                log::queue_command::Enqueue {
                    payload: Some(log::queue_command::enqueue::Payload::Message(
                        log::Message {
                            exchange: "x".into(),
                            routing_key: "k".into(),
                            properties: Bytes::from_static(b"\x00\x00"),
                            body: body.clone(),
                            persistent: true,
                            priority: 3,
                            expiration_ms: Some(10),
                        },
                    )),
                    size: 4096,
                    expiration_ms: Some(10),
                    priority: 3,
                },
            )),
        })),
    };
    let entry = log::LogEntry {
        format_version: warren_rpc::FORMAT_VERSION,
        log_id: Some(log::LogId {
            leader: Some(log::LeaderId {
                term: 2,
                node_id: 1,
            }),
            index: 9,
        }),
        payload: Some(log::log_entry::Payload::Normal(Bytes::from(
            proposal.encode_to_vec(),
        ))),
    };
    let wire = Bytes::from(entry.encode_to_vec());
    let back = log::LogEntry::decode(wire.clone()).expect("decode entry");
    assert_eq!(back, entry);
    let Some(log::log_entry::Payload::Normal(inner)) = back.payload else {
        panic!("normal payload expected");
    };
    // The inner buffer points into `wire`, not into a copy.
    let wire_range = wire.as_ptr() as usize..wire.as_ptr() as usize + wire.len();
    assert!(wire_range.contains(&(inner.as_ptr() as usize)));
    let p = log::Proposal::decode(inner).expect("decode proposal");
    assert_eq!(p, proposal);
}
