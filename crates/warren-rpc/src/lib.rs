//! warren-rpc: the protobuf and gRPC types generated from `proto/`.
//!
//! Three packages: `warren.log.v1` ([`log`]) is the replicated-log format
//! (log entries, proposals, snapshots, replies of the state machines),
//! `warren.raft.v1` ([`raft`]) the Raft service between nodes, each request
//! naming its group, and `warren.broker.v1` ([`broker`]) what brokers hand
//! each other (publishes to a queue held by one node). This crate depends on no other warren crate: the
//! conversions between these wire types and the domain types of
//! warren-core live in warren-cluster (STYLE.md 4).
//!
//! ```text
//!   proto/warren/*.proto ──build.rs (tonic-prost-build, vendored protoc)──▶ log, raft
//!   warren-cluster: domain type ◀──From / TryFrom──▶ log::* ──prost──▶ bytes in the log
//! ```

/// The generated modules, nested as the proto packages are, so that the
/// cross-package paths protoc emits (`super::super::log::v1`) resolve.
#[allow(clippy::all)] // generated code
pub mod warren {
    pub mod log {
        pub mod v1 {
            tonic::include_proto!("warren.log.v1");
        }
    }
    pub mod raft {
        pub mod v1 {
            tonic::include_proto!("warren.raft.v1");
        }
    }
    pub mod broker {
        pub mod v1 {
            tonic::include_proto!("warren.broker.v1");
        }
    }
}

/// Broker-to-broker calls between nodes (`warren.broker.v1`).
pub use warren::broker::v1 as broker;
/// The replicated-log format (`warren.log.v1`).
pub use warren::log::v1 as log;
/// The Raft service between nodes (`warren.raft.v1`).
pub use warren::raft::v1 as raft;

/// Version written into every log entry and snapshot; readers refuse others.
pub const FORMAT_VERSION: u32 = 1;
