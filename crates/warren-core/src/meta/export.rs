//! Exporting the state as a RabbitMQ definitions file, so that `warren ctl`
//! can back up a broker and RabbitMQ (or Warren) can import it.

use serde_json::{Map, Value as Json, json};

use crate::value::{Table, Value};

use super::state::MetaState;

fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Bool(b) => Json::Bool(*b),
        Value::F32(f) => json!(f64::from(*f)),
        Value::F64(f) => json!(f),
        Value::Decimal { scale, value } => json!(f64::from(*value) / 10f64.powi(i32::from(*scale))),
        Value::ShortString(s) => Json::String(s.clone()),
        Value::LongString(b) | Value::ByteArray(b) => {
            Json::String(String::from_utf8_lossy(b).into_owned())
        }
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Timestamp(t) => json!(t),
        Value::Table(t) => table_to_json(t),
        Value::Void => Json::Null,
        other => other.as_i64().map_or(Json::Null, |i| json!(i)),
    }
}

fn table_to_json(t: &Table) -> Json {
    Json::Object(
        t.iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect::<Map<_, _>>(),
    )
}

fn users_json(s: &MetaState) -> Vec<Json> {
    s.users
        .values()
        .map(|u| {
            let (hash, alg) = u.password_hash.to_rabbit();
            json!({"name": u.name, "password_hash": hash, "hashing_algorithm": alg,
                   "tags": u.tags, "limits": {}})
        })
        .collect()
}

fn permissions_json(s: &MetaState) -> Vec<Json> {
    let mut out = Vec::new();
    for (user, per_vhost) in &s.permissions {
        for (vhost, p) in per_vhost {
            let p = p.permission();
            out.push(
                json!({"user": user, "vhost": vhost, "configure": p.configure,
                            "write": p.write, "read": p.read}),
            );
        }
    }
    out
}

/// (exchanges, queues, bindings) of every vhost.
fn topology_json(s: &MetaState) -> (Vec<Json>, Vec<Json>, Vec<Json>) {
    let (mut exchanges, mut queues, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
    for (vname, v) in &s.vhosts {
        for (name, x) in &v.exchanges {
            for ((dest, key), tables) in &x.bindings {
                for args in tables {
                    bindings.push(
                        json!({"source": name, "vhost": vname, "destination": dest.name(),
                        "destination_type": dest.kind(), "routing_key": key,
                        "arguments": table_to_json(args)}),
                    );
                }
            }
            if name.is_empty() || name.starts_with("amq.") {
                continue;
            }
            let d = &x.def;
            exchanges.push(
                json!({"name": name, "vhost": vname, "type": d.kind.as_str(),
                "durable": d.durable, "auto_delete": d.auto_delete, "internal": d.internal,
                "arguments": table_to_json(&d.arguments)}),
            );
        }
        for q in v.queues.values().filter(|q| q.exclusive_owner.is_none()) {
            let qtype = q
                .arguments
                .get("x-queue-type")
                .and_then(Value::as_str)
                .unwrap_or("classic");
            queues.push(json!({"name": q.name, "vhost": vname, "durable": q.durable,
                "auto_delete": q.auto_delete, "type": qtype, "arguments": table_to_json(&q.arguments)}));
        }
    }
    (exchanges, queues, bindings)
}

impl MetaState {
    /// The state in RabbitMQ's definitions format. Left out, as RabbitMQ
    /// leaves them out: the default and `amq.*` exchanges, exclusive queues.
    pub fn export_definitions(&self) -> Json {
        let vhosts: Vec<Json> = self
            .vhosts
            .keys()
            .map(|n| json!({"name": n, "limits": [], "metadata": {}}))
            .collect();
        let (exchanges, queues, bindings) = topology_json(self);
        json!({
            "rabbit_version": "3.10.8",
            "rabbitmq_version": "3.10.8",
            "product_name": "Warren",
            "product_version": env!("CARGO_PKG_VERSION"),
            "users": users_json(self),
            "vhosts": vhosts,
            "permissions": permissions_json(self),
            "topic_permissions": [],
            "parameters": [],
            "global_parameters": [],
            "policies": [],
            "queues": queues,
            "exchanges": exchanges,
            "bindings": bindings,
        })
    }
}
