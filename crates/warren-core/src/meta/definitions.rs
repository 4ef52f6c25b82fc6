//! Importing a RabbitMQ definitions file (`rabbitmqctl export_definitions`,
//! management "export definitions") as a list of commands.
//!
//! Users, vhosts, permissions, exchanges, queues and bindings are imported;
//! policies, parameters, global parameters, topic permissions and limits
//! are skipped without error (Warren does not implement them yet). As in
//! RabbitMQ's importer, exchanges named `amq.*` are skipped: they are
//! predeclared in every vhost. Arguments convert as RabbitMQ converts them
//! (`rabbit_misc:to_amqp_table/1`): integers to long, other numbers to
//! double, strings to longstr.

use bytes::Bytes;
use serde_json::{Map, Value as Json};

use crate::value::{Table, Value};

use super::auth::{PasswordHash, Permission, User};
use super::command::MetaCommand;
use super::error::MetaError;
use super::types::{BindingDef, Destination, ExchangeDef, ExchangeKind, QueueDef};

fn invalid(what: impl AsRef<str>) -> MetaError {
    MetaError::precondition_failed(format!("invalid definitions: {}", what.as_ref()))
}

type Obj = Map<String, Json>;

fn string<'a>(o: &'a Obj, key: &str, what: &str) -> Result<&'a str, MetaError> {
    o.get(key)
        .and_then(Json::as_str)
        .ok_or_else(|| invalid(format!("{what} without a string '{key}'")))
}

fn flag(o: &Obj, key: &str) -> bool {
    o.get(key).and_then(Json::as_bool).unwrap_or(false)
}

/// The objects of a top-level array (absent means none).
fn section<'a>(root: &'a Obj, key: &str) -> Result<Vec<&'a Obj>, MetaError> {
    match root.get(key) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_object()
                    .ok_or_else(|| invalid(format!("an entry of '{key}' is not an object")))
            })
            .collect(),
        Some(_) => Err(invalid(format!("'{key}' is not an array"))),
    }
}

/// A JSON value as RabbitMQ stores it in an argument table.
pub(crate) fn json_to_value(j: &Json) -> Result<Value, MetaError> {
    Ok(match j {
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::I64(i),
            None => Value::F64(
                n.as_f64()
                    .ok_or_else(|| invalid(format!("number {n} out of range")))?,
            ),
        },
        Json::String(s) => Value::LongString(Bytes::from(s.clone())),
        Json::Array(items) => {
            Value::Array(items.iter().map(json_to_value).collect::<Result<_, _>>()?)
        }
        Json::Object(o) => Value::Table(json_to_table(Some(&Json::Object(o.clone())))?),
        Json::Null => return Err(invalid("null is not allowed in arguments")),
    })
}

fn json_to_table(j: Option<&Json>) -> Result<Table, MetaError> {
    match j {
        None | Some(Json::Null) => Ok(Table::new()),
        Some(Json::Object(o)) => o
            .iter()
            .map(|(k, v)| Ok((k.clone(), json_to_value(v)?)))
            .collect(),
        Some(_) => Err(invalid("arguments are not an object")),
    }
}

/// Tags are a list in current exports and a comma-separated string in old ones.
fn tags(o: &Obj) -> Vec<String> {
    match o.get("tags") {
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(Json::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Json::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn user(o: &Obj) -> Result<MetaCommand, MetaError> {
    let name = string(o, "name", "a user")?;
    let hash = o.get("password_hash").and_then(Json::as_str).unwrap_or("");
    let algorithm = o
        .get("hashing_algorithm")
        .and_then(Json::as_str)
        .unwrap_or("");
    Ok(MetaCommand::PutUser {
        user: User {
            name: name.to_owned(),
            password_hash: PasswordHash::from_rabbit(hash, algorithm)?,
            tags: tags(o),
        },
    })
}

fn permission(o: &Obj) -> Result<MetaCommand, MetaError> {
    let what = "a permission";
    Ok(MetaCommand::SetPermissions {
        user: string(o, "user", what)?.to_owned(),
        vhost: string(o, "vhost", what)?.to_owned(),
        permission: Permission {
            configure: string(o, "configure", what)?.to_owned(),
            write: string(o, "write", what)?.to_owned(),
            read: string(o, "read", what)?.to_owned(),
        },
    })
}

fn exchange(o: &Obj) -> Result<Option<MetaCommand>, MetaError> {
    let name = string(o, "name", "an exchange")?;
    if name.is_empty() || name.starts_with("amq.") {
        return Ok(None);
    }
    let type_name = string(o, "type", "an exchange")?;
    let kind = ExchangeKind::parse(type_name)
        .ok_or_else(|| invalid(format!("exchange '{name}' has unknown type '{type_name}'")))?;
    Ok(Some(MetaCommand::DeclareExchange {
        vhost: string(o, "vhost", "an exchange")?.to_owned(),
        def: ExchangeDef {
            name: name.to_owned(),
            kind,
            durable: flag(o, "durable"),
            auto_delete: flag(o, "auto_delete"),
            internal: flag(o, "internal"),
            arguments: json_to_table(o.get("arguments"))?,
        },
    }))
}

fn queue(o: &Obj) -> Result<MetaCommand, MetaError> {
    let mut arguments = json_to_table(o.get("arguments"))?;
    // Newer exports carry the queue type outside the arguments.
    if let Some(t) = o.get("type").and_then(Json::as_str)
        && t != "classic"
        && !arguments.contains_key("x-queue-type")
    {
        arguments.insert(
            "x-queue-type".to_owned(),
            Value::LongString(Bytes::from(t.to_owned())),
        );
    }
    Ok(MetaCommand::DeclareQueue {
        vhost: string(o, "vhost", "a queue")?.to_owned(),
        def: QueueDef {
            name: string(o, "name", "a queue")?.to_owned(),
            durable: flag(o, "durable"),
            exclusive_owner: None,
            auto_delete: flag(o, "auto_delete"),
            arguments,
            home: None,
        },
    })
}

fn binding(o: &Obj) -> Result<MetaCommand, MetaError> {
    let what = "a binding";
    let dest = string(o, "destination", what)?.to_owned();
    let destination = match string(o, "destination_type", what)? {
        "queue" => Destination::Queue(dest),
        "exchange" => Destination::Exchange(dest),
        other => return Err(invalid(format!("binding destination_type '{other}'"))),
    };
    Ok(MetaCommand::Bind {
        vhost: string(o, "vhost", what)?.to_owned(),
        binding: BindingDef {
            source: string(o, "source", what)?.to_owned(),
            destination,
            routing_key: o
                .get("routing_key")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned(),
            arguments: json_to_table(o.get("arguments"))?,
        },
    })
}

/// Parses a definitions file into commands in dependency order: vhosts,
/// users, permissions, exchanges, queues, bindings.
pub fn definitions_from_json(json: &str) -> Result<Vec<MetaCommand>, MetaError> {
    let root: Json = serde_json::from_str(json).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let root = root
        .as_object()
        .ok_or_else(|| invalid("top level is not an object"))?;
    let mut cmds = Vec::new();
    for v in section(root, "vhosts")? {
        let name = string(v, "name", "a vhost")?;
        cmds.push(MetaCommand::AddVhost {
            name: name.to_owned(),
        });
    }
    for u in section(root, "users")? {
        cmds.push(user(u)?);
    }
    for p in section(root, "permissions")? {
        cmds.push(permission(p)?);
    }
    for x in section(root, "exchanges")? {
        cmds.extend(exchange(x)?);
    }
    for q in section(root, "queues")? {
        cmds.push(queue(q)?);
    }
    for b in section(root, "bindings")? {
        cmds.push(binding(b)?);
    }
    Ok(cmds)
}
