//! Password hashes, authentication and permission checks.

use super::*;
use crate::meta::{Access, PasswordHash, Permission, ResourceKind, User};

/// Vectors computed outside Warren (Python hashlib): salt 01020304, password "secret".
const SHA256_SECRET: &str = "AQIDBDB9kM21iEUzN1lZ+6VReCsdNqS0sERdAQTcY6Xs3PMz";
const SHA512_SECRET: &str =
    "AQIDBPhTH2L5HGYB1LWOrn+YpvuQmVOXKGqgsuiJRIZTILRoEvblSJo/WAsym3IZTfuaIaK5KR2o5KwFfTv6KsxfMIE=";
const MD5_SECRET: &str = "AQIDBDgk9ci8Lfh6CKE9Y0AUfmU=";

#[test]
fn rabbit_hash_schemes_verify() {
    for (b64, alg) in [
        (SHA256_SECRET, "rabbit_password_hashing_sha256"),
        (SHA512_SECRET, "rabbit_password_hashing_sha512"),
        (MD5_SECRET, "rabbit_password_hashing_md5"),
        (MD5_SECRET, ""),
    ] {
        let h = PasswordHash::from_rabbit(b64, alg).unwrap();
        assert!(h.verify("secret"), "{alg}");
        assert!(!h.verify("Secret"), "{alg}");
        assert!(!h.verify(""), "{alg}");
        let alg_out = if alg.is_empty() {
            "rabbit_password_hashing_md5"
        } else {
            alg
        };
        assert_eq!(h.to_rabbit(), (b64.to_owned(), alg_out));
    }
    assert_eq!(
        PasswordHash::new_sha256("secret", [1, 2, 3, 4])
            .to_rabbit()
            .0,
        SHA256_SECRET
    );
    // The fixed guest hash of with_defaults, computed outside Warren.
    let guest = MetaState::with_defaults()
        .user("guest")
        .unwrap()
        .password_hash
        .to_rabbit()
        .0;
    assert_eq!(guest, "d3JuMXLmBHHe73wORQTgCOxYkb5HnLp9X63FvyDsyUIewIQe");
}

#[test]
fn bad_hashes_are_refused() {
    assert_eq!(
        PasswordHash::from_rabbit("", "rabbit_password_hashing_sha256"),
        Ok(PasswordHash::None)
    );
    assert!(!PasswordHash::None.verify(""));
    assert_eq!(
        PasswordHash::from_rabbit(MD5_SECRET, "rabbit_password_hashing_sha256")
            .unwrap_err()
            .code,
        406
    );
    assert_eq!(
        PasswordHash::from_rabbit("!!!", "rabbit_password_hashing_sha256")
            .unwrap_err()
            .code,
        406
    );
    assert_eq!(
        PasswordHash::from_rabbit(SHA256_SECRET, "bcrypt")
            .unwrap_err()
            .text,
        "PRECONDITION_FAILED - unknown password hashing algorithm 'bcrypt'"
    );
}

fn with_user(name: &str, perm: Option<Permission>) -> MetaState {
    let mut s = MetaState::with_defaults();
    let user = User {
        name: name.into(),
        password_hash: PasswordHash::new_sha256("pw", [9, 9, 9, 9]),
        tags: vec![],
    };
    s.apply(MetaCommand::PutUser { user }).unwrap();
    if let Some(permission) = perm {
        s.apply(MetaCommand::SetPermissions {
            user: name.into(),
            vhost: "/".into(),
            permission,
        })
        .unwrap();
    }
    s
}

fn perm(c: &str, w: &str, r: &str) -> Permission {
    Permission {
        configure: c.into(),
        write: w.into(),
        read: r.into(),
    }
}

#[test]
fn authenticate_and_vhost_access() {
    let s = with_user("u", None);
    assert_eq!(
        s.authenticate("u", "pw").map(|u| u.name.as_str()),
        Some("u")
    );
    assert!(s.authenticate("u", "wrong").is_none());
    assert!(s.authenticate("nobody", "pw").is_none());
    assert_eq!(
        s.authenticate("guest", "guest").unwrap().tags,
        ["administrator"]
    );
    assert_eq!(
        s.check_vhost_access("u", "/"),
        Err(err(
            530,
            "NOT_ALLOWED - access to vhost '/' refused for user 'u'"
        ))
    );
    assert_eq!(
        s.check_vhost_access("guest", "/x"),
        Err(err(
            530,
            "NOT_ALLOWED - access to vhost '/x' refused for user 'guest'"
        ))
    );
    // Any entry, even one that allows nothing, grants the vhost.
    let s = with_user("u", Some(perm("", "", "")));
    assert_eq!(s.check_vhost_access("u", "/"), Ok(()));
}

#[test]
fn permission_regexes() {
    let s = with_user("u", Some(perm("^app-", "", "log")));
    let check = |access, kind, name: &str| s.check_permission("u", "/", access, kind, name);
    assert_eq!(
        check(Access::Configure, ResourceKind::Queue, "app-1"),
        Ok(())
    );
    assert_eq!(
        check(Access::Configure, ResourceKind::Queue, "my-app-1"),
        Err(err(
            403,
            "ACCESS_REFUSED - configure access to queue 'my-app-1' in vhost '/' refused for user 'u'"
        ))
    );
    // Unanchored search, as Erlang's re:run.
    assert_eq!(check(Access::Read, ResourceKind::Queue, "catalog"), Ok(()));
    // Empty regex means "^$": nothing but the empty name.
    assert_eq!(
        check(Access::Write, ResourceKind::Exchange, "x")
            .unwrap_err()
            .text,
        "ACCESS_REFUSED - write access to exchange 'x' in vhost '/' refused for user 'u'"
    );
    // The default exchange is checked and reported as amq.default.
    assert_eq!(
        check(Access::Write, ResourceKind::Exchange, ""),
        Err(err(
            403,
            "ACCESS_REFUSED - write access to exchange 'amq.default' in vhost '/' refused for user 'u'"
        ))
    );
    let s = with_user("u", Some(perm("", "^amq\\.default$", "")));
    assert_eq!(
        s.check_permission("u", "/", Access::Write, ResourceKind::Exchange, ""),
        Ok(())
    );
    assert_eq!(
        s.check_permission("u", "other", Access::Write, ResourceKind::Exchange, "")
            .unwrap_err()
            .code,
        403
    );
    assert_eq!(
        s.permission("u", "/"),
        Some(perm("", "^amq\\.default$", ""))
    );
}

#[test]
fn set_permissions_errors() {
    let mut s = with_user("u", None);
    let set = |user: &str, vhost: &str, p| MetaCommand::SetPermissions {
        user: user.into(),
        vhost: vhost.into(),
        permission: p,
    };
    assert_eq!(
        s.apply(set("u", "/", perm("(", ".*", ".*")))
            .unwrap_err()
            .code,
        406
    );
    assert_eq!(
        s.apply(set("nobody", "/", perm(".*", ".*", ".*"))),
        Err(err(404, "NOT_FOUND - no user 'nobody'"))
    );
    assert_eq!(
        s.apply(set("u", "nov", perm(".*", ".*", ".*"))),
        Err(err(404, "NOT_FOUND - no vhost 'nov'"))
    );
    assert_eq!(s.permission("u", "/"), None);
    s.apply(set("u", "/", Permission::full())).unwrap();
    assert_eq!(
        s.apply(MetaCommand::DeleteUser { name: "u".into() }),
        Ok(MetaReply::Ok)
    );
    assert_eq!(s.permission("u", "/"), None);
    assert_eq!(
        s.apply(MetaCommand::DeleteUser { name: "u".into() }),
        Err(err(404, "NOT_FOUND - no user 'u'"))
    );
}
