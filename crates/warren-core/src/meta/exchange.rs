//! exchange.declare and exchange.delete, with RabbitMQ's checks and texts.

use super::args::{EXCHANGE_EQUIVALENCE_KEYS, assert_args, assert_field, value_type_name};
use super::binding::default_exchange_refused;
use super::command::MetaReply;
use super::error::{MetaError, rs};
use super::state::{Exchange, MetaState};
use super::types::ExchangeDef;

/// RabbitMQ reserves `amq.` for its own exchanges and server-named queues.
pub(crate) fn reserved(name: &str) -> bool {
    name.starts_with("amq.")
}

pub(crate) fn reserved_prefix_refused(kind: &str, name: &str) -> MetaError {
    MetaError::access_refused(format!(
        "{kind} name '{name}' contains reserved prefix 'amq.*'"
    ))
}

/// Redeclaring must match type, durable, auto_delete, internal and the
/// `alternate-exchange` argument (`rabbit_exchange:assert_equivalence/6`).
fn assert_equivalent(
    current: &ExchangeDef,
    new: &ExchangeDef,
    resource: &str,
) -> Result<(), MetaError> {
    assert_field(current.kind.as_str(), new.kind.as_str(), "type", resource)?;
    assert_field(current.durable, new.durable, "durable", resource)?;
    assert_field(
        current.auto_delete,
        new.auto_delete,
        "auto_delete",
        resource,
    )?;
    assert_field(current.internal, new.internal, "internal", resource)?;
    assert_args(
        &current.arguments,
        &new.arguments,
        resource,
        EXCHANGE_EQUIVALENCE_KEYS,
    )
}

/// The alternate exchange must be named by a string.
fn check_alternate_exchange(def: &ExchangeDef, resource: &str) -> Result<(), MetaError> {
    match def.arguments.get("alternate-exchange") {
        Some(v) if v.as_str().is_none() => Err(MetaError::precondition_failed(format!(
            "invalid type '{}' for arg 'alternate-exchange' in {resource}",
            value_type_name(v)
        ))),
        _ => Ok(()),
    }
}

impl MetaState {
    pub(crate) fn declare_exchange(
        &mut self,
        vhost: &str,
        def: ExchangeDef,
    ) -> Result<MetaReply, MetaError> {
        if def.name.is_empty() {
            return Err(default_exchange_refused());
        }
        let resource = rs("exchange", &def.name, vhost);
        let v = self.vhost_mut(vhost)?;
        if let Some(existing) = v.exchanges.get(&def.name) {
            assert_equivalent(&existing.def, &def, &resource)?;
            return Ok(MetaReply::Existed);
        }
        if reserved(&def.name) {
            return Err(reserved_prefix_refused("exchange", &def.name));
        }
        check_alternate_exchange(&def, &resource)?;
        v.exchanges.insert(def.name.clone(), Exchange::new(def));
        Ok(MetaReply::Created)
    }

    pub(crate) fn delete_exchange(
        &mut self,
        vhost: &str,
        name: &str,
        if_unused: bool,
    ) -> Result<MetaReply, MetaError> {
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        let resource = rs("exchange", name, vhost);
        if reserved(name) {
            return Err(MetaError::access_refused(format!(
                "deletion of system {resource} not allowed"
            )));
        }
        let v = self.vhost_mut(vhost)?;
        let Some(x) = v.exchanges.get(name) else {
            return Ok(MetaReply::Ok);
        };
        if if_unused && !x.bindings.is_empty() {
            return Err(MetaError::precondition_failed(format!("{resource} in use")));
        }
        v.delete_exchange_cascade(name);
        Ok(MetaReply::Ok)
    }
}
