//! Authentication and authorisation checks (`rabbit_access_control` and
//! `rabbit_auth_backend_internal` semantics).

use super::auth::{Access, ResourceKind, User};
use super::error::{MetaError, rs};
use super::state::MetaState;

impl MetaState {
    /// The user, if the password is right. Users without a password hash
    /// never authenticate this way.
    pub fn authenticate(&self, user: &str, password: &str) -> Option<&User> {
        self.users
            .get(user)
            .filter(|u| u.password_hash.verify(password))
    }

    /// connection.open: the user needs a permission entry in the vhost (any
    /// entry, even all-empty). A missing vhost is refused with the same text.
    pub fn check_vhost_access(&self, user: &str, vhost: &str) -> Result<(), MetaError> {
        let allowed = self.vhosts.contains_key(vhost)
            && self
                .permissions
                .get(user)
                .is_some_and(|p| p.contains_key(vhost));
        if allowed {
            Ok(())
        } else {
            Err(MetaError::not_allowed(format!(
                "access to vhost '{vhost}' refused for user '{user}'"
            )))
        }
    }

    /// Is `user` allowed `access` to the named exchange or queue? The default
    /// exchange is checked (and reported) under the name `amq.default`. The
    /// refusal names the operation: "write access to exchange 'x' in vhost
    /// '/' refused for user 'u'" (`rabbit_access_control`).
    pub fn check_permission(
        &self,
        user: &str,
        vhost: &str,
        access: Access,
        kind: ResourceKind,
        name: &str,
    ) -> Result<(), MetaError> {
        let name = match (kind, name) {
            (ResourceKind::Exchange, "") => "amq.default",
            _ => name,
        };
        let allowed = self
            .permissions
            .get(user)
            .and_then(|p| p.get(vhost))
            .is_some_and(|p| p.allows(access, name));
        if allowed {
            Ok(())
        } else {
            let verb = match access {
                Access::Configure => "configure",
                Access::Write => "write",
                Access::Read => "read",
            };
            Err(MetaError::access_refused(format!(
                "{verb} access to {} refused for user '{user}'",
                rs(kind.as_str(), name, vhost)
            )))
        }
    }
}
