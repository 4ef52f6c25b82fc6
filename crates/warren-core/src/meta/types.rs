//! The definitions the metadata machine holds: exchanges, queues, bindings.

use crate::value::Table;

use super::error::MetaError;

/// The exchange types Warren implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            _ => None,
        }
    }

    /// [`ExchangeKind::parse`] with RabbitMQ's error for exchange.declare:
    /// an unknown type is a connection error (503 COMMAND_INVALID).
    pub fn parse_or_err(s: &str) -> Result<Self, MetaError> {
        Self::parse(s)
            .ok_or_else(|| MetaError::command_invalid(format!("unknown exchange type '{s}'")))
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDef {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Table,
}

impl ExchangeDef {
    /// The `alternate-exchange` argument, if it is a string.
    pub fn alternate_exchange(&self) -> Option<&str> {
        self.arguments
            .get("alternate-exchange")
            .and_then(|v| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueDef {
    pub name: String,
    pub durable: bool,
    /// The connection that owns this exclusive queue.
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: Table,
    /// In a cluster, the node that holds this non-durable, non-exclusive
    /// queue (its declaring node): the queue is deleted when that node is
    /// judged down, as RabbitMQ deletes a node's transient queues when it
    /// goes down. `None` otherwise (an exclusive queue's owner names its
    /// node). Not part of declaration equivalence.
    pub home: Option<u64>,
}

/// Replicas of a quorum queue declared without `x-quorum-initial-group-size`
/// (RabbitMQ's default).
pub const DEFAULT_QUORUM_REPLICAS: u32 = 3;

impl QueueDef {
    /// How many nodes the queue's log is replicated on, as declared: a
    /// classic queue, and a non-durable one (it lives on its node), has
    /// one; a quorum queue `x-quorum-initial-group-size` (`None`: not given).
    pub fn declared_replicas(&self) -> Option<u32> {
        let arg = |k: &str| self.arguments.get(k);
        if !self.durable || arg("x-queue-type").and_then(|v| v.as_str()) == Some("classic") {
            return Some(1);
        }
        arg("x-quorum-initial-group-size")
            .and_then(|v| v.as_i64())
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
    }

    /// [`Self::declared_replicas`], or the default.
    pub fn replicas(&self) -> u32 {
        self.declared_replicas().unwrap_or(DEFAULT_QUORUM_REPLICAS)
    }
}

/// What a binding points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Destination {
    Queue(String),
    Exchange(String),
}

impl Destination {
    pub fn name(&self) -> &str {
        match self {
            Destination::Queue(n) | Destination::Exchange(n) => n,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Queue(_) => "queue",
            Destination::Exchange(_) => "exchange",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BindingDef {
    pub source: String,
    pub destination: Destination,
    pub routing_key: String,
    pub arguments: Table,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn def(durable: bool, args: &[(&str, Value)]) -> QueueDef {
        let mut arguments = Table::default();
        for (k, v) in args {
            arguments.insert((*k).to_owned(), v.clone());
        }
        QueueDef {
            name: "q".into(),
            durable,
            exclusive_owner: None,
            auto_delete: false,
            arguments,
            home: None,
        }
    }

    #[test]
    fn replicas_as_declared() {
        assert_eq!(def(true, &[]).declared_replicas(), None);
        assert_eq!(def(true, &[]).replicas(), DEFAULT_QUORUM_REPLICAS);
        let classic = [(
            "x-queue-type",
            Value::LongString(bytes::Bytes::from_static(b"classic")),
        )];
        assert_eq!(def(true, &classic).replicas(), 1);
        let five = [("x-quorum-initial-group-size", Value::I32(5))];
        assert_eq!(def(true, &five).replicas(), 5);
        assert_eq!(
            def(false, &[]).replicas(),
            1,
            "a transient queue lives on one node"
        );
    }
}
