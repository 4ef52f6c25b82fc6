//! Metadata: vhosts, users, permissions, exchanges, queues and bindings, as
//! a pure, deterministic state machine with RabbitMQ's rules and reply texts.
//!
//! ```text
//!   MetaCommand ──▶ MetaState::apply ──▶ Result<MetaReply, MetaError>
//!   publish     ──▶ MetaState::route ──▶ queue names (via routing/)
//!   login/ops   ──▶ authenticate / check_vhost_access / check_permission
//!   definitions JSON ──▶ definitions_from_json ──▶ Vec<MetaCommand>
//! ```
//!
//! The state is replicated by applying the same commands in the same order
//! on every node (the metadata Raft group), so nothing here reads a clock,
//! draws random numbers (server-generated names come in with the command)
//! or iterates a hash map. Permission checks, exclusivity of use (as
//! opposed to declaration) and publishing rules that need the connection are
//! exposed as query methods for the frontend.

mod access;
mod args;
mod auth;
mod binding;
mod command;
mod definitions;
mod error;
mod exchange;
mod export;
mod queue;
mod queue_args;
mod route;
mod state;
mod types;

pub use args::{erlang_term, value_type_name};
pub use auth::{Access, PasswordHash, Permission, ResourceKind, User};
pub use command::{MetaCommand, MetaReply};
pub use definitions::definitions_from_json;
pub use error::MetaError;
pub use queue::SERVER_NAMED_PREFIX;
pub use state::MetaState;
pub use types::{
    BindingDef, DEFAULT_QUORUM_REPLICAS, Destination, ExchangeDef, ExchangeKind, QueueDef,
};

#[cfg(test)]
mod tests;
