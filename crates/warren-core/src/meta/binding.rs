//! Bind, unbind, and the cascades that follow deletions.
//!
//! RabbitMQ semantics kept here:
//! - a binding is (source, destination, routing key, arguments); binding
//!   twice is a no-op, unbinding a missing binding (or one whose source or
//!   destination is gone) is a no-op;
//! - nothing binds to or from the default exchange;
//! - deleting a queue or exchange removes every binding it is part of;
//! - an auto-delete exchange is deleted when its last binding *as source*
//!   goes, and that deletion cascades in turn.

use std::collections::BTreeSet;

use crate::routing::validate_headers_binding;

use super::command::MetaReply;
use super::error::{MetaError, rs};
use super::state::{MetaState, Vhost};
use super::types::{BindingDef, Destination, ExchangeKind};

pub(crate) fn default_exchange_refused() -> MetaError {
    MetaError::access_refused("operation not permitted on the default exchange")
}

impl Vhost {
    fn destination_exists(&self, d: &Destination) -> bool {
        match d {
            Destination::Queue(q) => self.queues.contains_key(q),
            Destination::Exchange(x) => self.exchanges.contains_key(x),
        }
    }

    /// Adds the binding if new; the source must exist.
    fn add_binding(&mut self, b: BindingDef) {
        let Some(x) = self.exchanges.get_mut(&b.source) else {
            return;
        };
        let key = (b.destination.clone(), b.routing_key.clone());
        let tables = x.bindings.entry(key).or_default();
        if tables.contains(&b.arguments) {
            return;
        }
        x.router
            .add(b.destination.clone(), &b.routing_key, &b.arguments);
        tables.push(b.arguments);
        self.incoming
            .entry(b.destination)
            .or_default()
            .insert(b.source);
    }

    /// Removes the binding if present; returns whether it was.
    fn remove_binding(&mut self, b: &BindingDef) -> bool {
        let Some(x) = self.exchanges.get_mut(&b.source) else {
            return false;
        };
        let key = (b.destination.clone(), b.routing_key.clone());
        let Some(tables) = x.bindings.get_mut(&key) else {
            return false;
        };
        let Some(i) = tables.iter().position(|t| t == &b.arguments) else {
            return false;
        };
        tables.remove(i);
        x.router
            .remove(&b.destination, &b.routing_key, &b.arguments);
        if tables.is_empty() {
            x.bindings.remove(&key);
        }
        let still_bound = x
            .bindings
            .range((b.destination.clone(), String::new())..)
            .next()
            .is_some_and(|((d, _), _)| d == &b.destination);
        if !still_bound {
            self.unlink(&b.destination, &b.source);
        }
        true
    }

    /// Forgets that `source` has bindings to `dest`.
    fn unlink(&mut self, dest: &Destination, source: &str) {
        if let Some(sources) = self.incoming.get_mut(dest) {
            sources.remove(source);
            if sources.is_empty() {
                self.incoming.remove(dest);
            }
        }
    }

    /// Removes every binding to `dest`; returns the sources that lost one.
    pub(crate) fn remove_bindings_to(&mut self, dest: &Destination) -> BTreeSet<String> {
        let sources = self.incoming.remove(dest).unwrap_or_default();
        for source in &sources {
            let Some(x) = self.exchanges.get_mut(source) else {
                continue;
            };
            let keys: Vec<(Destination, String)> = x
                .bindings
                .range((dest.clone(), String::new())..)
                .take_while(|((d, _), _)| d == dest)
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                for args in x.bindings.remove(&key).unwrap_or_default() {
                    x.router.remove(dest, &key.1, &args);
                }
            }
        }
        sources
    }

    /// Deletes exchange `name` and its bindings both ways, then any
    /// auto-delete exchange left without bindings as source, transitively.
    pub(crate) fn delete_exchange_cascade(&mut self, name: &str) {
        let mut work = vec![name.to_owned()];
        while let Some(x_name) = work.pop() {
            let Some(x) = self.exchanges.remove(&x_name) else {
                continue;
            };
            for (dest, _) in x.bindings.keys() {
                self.unlink(dest, &x_name);
            }
            let sources = self.remove_bindings_to(&Destination::Exchange(x_name));
            work.extend(self.auto_delete_candidates(sources));
        }
    }

    /// Of `sources`, the auto-delete exchanges that have no bindings left.
    fn auto_delete_candidates(&self, sources: BTreeSet<String>) -> Vec<String> {
        sources
            .into_iter()
            .filter(|s| {
                self.exchanges
                    .get(s)
                    .is_some_and(|x| x.def.auto_delete && x.bindings.is_empty())
            })
            .collect()
    }

    /// After bindings from `sources` were removed: cascade auto-deletes.
    pub(crate) fn auto_delete_sources(&mut self, sources: BTreeSet<String>) {
        for name in self.auto_delete_candidates(sources) {
            self.delete_exchange_cascade(&name);
        }
    }
}

impl MetaState {
    pub(crate) fn bind(&mut self, vhost: &str, b: BindingDef) -> Result<MetaReply, MetaError> {
        if b.destination == Destination::Exchange(String::new()) || b.source.is_empty() {
            return Err(default_exchange_refused());
        }
        let v = self.vhost_mut(vhost)?;
        let source = v.exchanges.get(&b.source).ok_or_else(|| {
            MetaError::not_found(format!("no {}", rs("exchange", &b.source, vhost)))
        })?;
        if !v.destination_exists(&b.destination) {
            let d = &b.destination;
            return Err(MetaError::not_found(format!(
                "no {}",
                rs(d.kind(), d.name(), vhost)
            )));
        }
        if source.def.kind == ExchangeKind::Headers {
            validate_headers_binding(&b.arguments).map_err(MetaError::precondition_failed)?;
        }
        v.add_binding(b);
        Ok(MetaReply::Ok)
    }

    pub(crate) fn unbind(&mut self, vhost: &str, b: &BindingDef) -> Result<MetaReply, MetaError> {
        if b.destination == Destination::Exchange(String::new()) || b.source.is_empty() {
            return Err(default_exchange_refused());
        }
        let v = self.vhost_mut(vhost)?;
        if v.remove_binding(b) {
            v.auto_delete_sources(BTreeSet::from([b.source.clone()]));
        }
        Ok(MetaReply::Ok)
    }

    /// Every binding of a vhost, sorted by source, destination, key
    /// (the default exchange's implicit bindings are not listed).
    pub fn bindings(&self, vhost: &str) -> Vec<BindingDef> {
        let Some(v) = self.vhosts.get(vhost) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (source, x) in &v.exchanges {
            for ((dest, key), tables) in &x.bindings {
                out.extend(tables.iter().map(|args| BindingDef {
                    source: source.clone(),
                    destination: dest.clone(),
                    routing_key: key.clone(),
                    arguments: args.clone(),
                }));
            }
        }
        out
    }
}
