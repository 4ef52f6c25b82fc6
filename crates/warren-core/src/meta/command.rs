//! Commands the metadata machine applies, and its replies.

use super::auth::{Permission, User};
use super::types::{BindingDef, ExchangeDef, QueueDef};

/// One change to the metadata. Applied in log order on every node.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaCommand {
    /// Creates the vhost with its predeclared exchanges; idempotent.
    AddVhost {
        name: String,
    },
    DeleteVhost {
        name: String,
    },
    /// Creates or replaces a user.
    PutUser {
        user: User,
    },
    DeleteUser {
        name: String,
    },
    SetPermissions {
        user: String,
        vhost: String,
        permission: Permission,
    },
    DeclareExchange {
        vhost: String,
        def: ExchangeDef,
    },
    DeleteExchange {
        vhost: String,
        name: String,
        if_unused: bool,
    },
    DeclareQueue {
        vhost: String,
        def: QueueDef,
    },
    DeleteQueue {
        vhost: String,
        name: String,
    },
    Bind {
        vhost: String,
        binding: BindingDef,
    },
    Unbind {
        vhost: String,
        binding: BindingDef,
    },
    /// A connection closed: its exclusive queues go, in every vhost.
    DeleteExclusiveOf {
        connection: u64,
    },
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaReply {
    Ok,
    /// A declare or AddVhost created something new.
    Created,
    /// A declare found an equivalent existing entity and changed nothing.
    Existed,
    /// DeleteQueue removed this queue; the frontend tears its machine down.
    /// (Deleting a queue that does not exist replies `Ok`, as RabbitMQ does.)
    QueueDeleted {
        vhost: String,
        name: String,
    },
    /// Queues removed as a side effect, as (vhost, queue): the frontend
    /// tears their machines down.
    Deleted(Vec<(String, String)>),
}
