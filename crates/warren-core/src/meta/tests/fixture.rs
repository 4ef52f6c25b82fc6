//! The definitions export of a real RabbitMQ 3.10.8 loads unchanged and
//! behaves as that broker did (see the fixture's README).

use std::path::PathBuf;

use super::*;
use crate::meta::{Access, Permission, ResourceKind, definitions_from_json};

fn fixture_text() -> String {
    let dir = match std::env::var("WARREN_SHARED_DIR") {
        Ok(d) => PathBuf::from(d).join("fixtures"),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
    };
    let path = dir.join("rabbitmq-3.10.8-definitions.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} is missing ({e}); set WARREN_SHARED_DIR to the shared directory",
            path.display()
        )
    })
}

fn loaded() -> MetaState {
    let mut s = MetaState::with_defaults();
    for cmd in definitions_from_json(&fixture_text()).expect("fixture parses") {
        s.apply(cmd.clone())
            .unwrap_or_else(|e| panic!("{cmd:?} failed: {e}"));
    }
    s
}

#[test]
fn fixture_users_log_in_with_their_passwords() {
    let s = loaded();
    for (user, password) in [
        ("app1", "s3cret-app1"),
        ("monitor", "m0nitor"),
        ("guest", "guest"),
    ] {
        assert_eq!(
            s.authenticate(user, password).map(|u| u.name.as_str()),
            Some(user)
        );
        assert!(s.authenticate(user, "wrong").is_none(), "{user}");
        assert!(
            s.authenticate(user, &format!("{password} ")).is_none(),
            "{user}"
        );
    }
    assert_eq!(s.user("monitor").unwrap().tags, ["monitoring"]);
    assert_eq!(s.user("app1").unwrap().tags, Vec::<String>::new());
}

#[test]
fn fixture_permissions() {
    let s = loaded();
    assert_eq!(s.check_vhost_access("guest", "orders"), Ok(()));
    assert_eq!(s.check_vhost_access("app1", "orders"), Ok(()));
    assert_eq!(s.check_vhost_access("monitor", "orders"), Ok(()));
    assert_eq!(
        s.check_vhost_access("monitor", "/"),
        Err(err(
            530,
            "NOT_ALLOWED - access to vhost '/' refused for user 'monitor'"
        ))
    );
    let check = |user, access, kind, name| s.check_permission(user, "orders", access, kind, name);
    assert_eq!(
        check("app1", Access::Configure, ResourceKind::Queue, "app1-jobs"),
        Ok(())
    );
    assert_eq!(
        check(
            "app1",
            Access::Configure,
            ResourceKind::Queue,
            "orders.audit"
        ),
        Err(err(
            403,
            "ACCESS_REFUSED - configure access to queue 'orders.audit' in vhost 'orders' refused for user 'app1'"
        ))
    );
    assert_eq!(
        check(
            "app1",
            Access::Write,
            ResourceKind::Exchange,
            "orders.events"
        ),
        Ok(())
    );
    for access in [Access::Configure, Access::Write, Access::Read] {
        assert_eq!(
            check("monitor", access, ResourceKind::Queue, "orders.audit")
                .unwrap_err()
                .code,
            403
        );
    }
    assert_eq!(
        s.check_permission("app1", "/", Access::Read, ResourceKind::Queue, "any"),
        Ok(())
    );
    assert_eq!(
        s.check_permission("app1", "/", Access::Write, ResourceKind::Exchange, "")
            .unwrap_err()
            .code,
        403
    );
    assert_eq!(
        s.permission("app1", "orders"),
        Some(Permission {
            configure: "^app1-.*".into(),
            write: ".*".into(),
            read: ".*".into()
        })
    );
}

#[test]
fn fixture_topology_routes() {
    let s = loaded();
    let route_o = |x: &str, key: &str, h: Option<&Table>| {
        let mut out = Vec::new();
        s.route("orders", x, key, h, &mut out).unwrap();
        out
    };
    assert_eq!(
        route_o("orders.events", "order.created.eu", None),
        ["orders.audit", "orders.created"]
    );
    assert_eq!(
        route_o("orders.events", "order.paid", None),
        ["orders.audit"]
    );
    let eu = table(&[("region", ls("eu"))]);
    assert_eq!(route_o("orders.headers", "", Some(&eu)), ["orders.audit"]);
    let us = table(&[("region", ls("us"))]);
    assert_eq!(
        route_o("orders.headers", "", Some(&us)),
        ["orders.unrouted"]
    );
    let created = s.queue("orders", "orders.created").unwrap();
    assert_eq!(created.arguments, table(&[("x-queue-type", ls("quorum"))]));
    let audit = s.queue("orders", "orders.audit").unwrap();
    assert_eq!(
        audit.arguments,
        table(&[
            ("x-max-length", Value::I64(10000)),
            ("x-message-ttl", Value::I64(60000))
        ])
    );
    assert_eq!(
        s.exchange("orders", "orders.headers")
            .unwrap()
            .alternate_exchange(),
        Some("orders.unrouted")
    );
}

#[test]
fn export_then_import_gives_the_same_state() {
    let s = loaded();
    let json = s.export_definitions().to_string();
    let mut again = MetaState::new();
    for cmd in definitions_from_json(&json).unwrap() {
        again.apply(cmd).unwrap();
    }
    assert_eq!(again, s);
}

#[test]
fn malformed_definitions_are_refused() {
    assert_eq!(definitions_from_json("[]").unwrap_err().code, 406);
    assert_eq!(
        definitions_from_json(r#"{"queues":[{"vhost":"/"}]}"#)
            .unwrap_err()
            .text,
        "PRECONDITION_FAILED - invalid definitions: a queue without a string 'name'"
    );
    let skipped = r#"{"policies":[{"x":1}],"parameters":[],"topic_permissions":[{"a":1}],"global_parameters":[]}"#;
    assert_eq!(definitions_from_json(skipped), Ok(vec![]));
}
