//! Tests of the metadata machine: exact replies and reply texts.

mod bindings;
mod declare;
mod declare_queue;
mod fixture;
mod permissions;
mod random;
mod routes;

use bytes::Bytes;

use crate::meta::{
    BindingDef, Destination, ExchangeDef, ExchangeKind, MetaCommand, MetaError, MetaReply,
    MetaState, QueueDef,
};
use crate::value::{Table, Value};

pub(super) fn ls(s: &str) -> Value {
    Value::LongString(Bytes::from(s.to_owned()))
}

pub(super) fn table(pairs: &[(&str, Value)]) -> Table {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

pub(super) fn xdef(name: &str, kind: ExchangeKind) -> ExchangeDef {
    ExchangeDef {
        name: name.to_owned(),
        kind,
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: Table::new(),
    }
}

pub(super) fn qdef(name: &str) -> QueueDef {
    QueueDef {
        name: name.to_owned(),
        durable: true,
        exclusive_owner: None,
        auto_delete: false,
        arguments: Table::new(),
        home: None,
    }
}

pub(super) fn declare_x(s: &mut MetaState, def: ExchangeDef) -> Result<MetaReply, MetaError> {
    s.apply(MetaCommand::DeclareExchange {
        vhost: "/".to_owned(),
        def,
    })
}

pub(super) fn declare_q(s: &mut MetaState, def: QueueDef) -> Result<MetaReply, MetaError> {
    s.apply(MetaCommand::DeclareQueue {
        vhost: "/".to_owned(),
        def,
    })
}

pub(super) fn binding(source: &str, dest: Destination, key: &str, args: Table) -> BindingDef {
    BindingDef {
        source: source.to_owned(),
        destination: dest,
        routing_key: key.to_owned(),
        arguments: args,
    }
}

pub(super) fn q(name: &str) -> Destination {
    Destination::Queue(name.to_owned())
}

pub(super) fn x(name: &str) -> Destination {
    Destination::Exchange(name.to_owned())
}

pub(super) fn bind(
    s: &mut MetaState,
    source: &str,
    dest: Destination,
    key: &str,
) -> Result<MetaReply, MetaError> {
    s.apply(MetaCommand::Bind {
        vhost: "/".to_owned(),
        binding: binding(source, dest, key, Table::new()),
    })
}

pub(super) fn unbind(
    s: &mut MetaState,
    source: &str,
    dest: Destination,
    key: &str,
) -> Result<MetaReply, MetaError> {
    s.apply(MetaCommand::Unbind {
        vhost: "/".to_owned(),
        binding: binding(source, dest, key, Table::new()),
    })
}

pub(super) fn route(s: &MetaState, exchange: &str, key: &str) -> Vec<String> {
    route_h(s, exchange, key, None)
}

pub(super) fn route_h(
    s: &MetaState,
    exchange: &str,
    key: &str,
    headers: Option<&Table>,
) -> Vec<String> {
    let mut out = Vec::new();
    s.route("/", exchange, key, headers, &mut out)
        .expect("route");
    out
}

pub(super) fn err(code: u16, text: &str) -> MetaError {
    MetaError {
        code,
        text: text.to_owned(),
    }
}
