//! A service's runtime state holds only the handles it declared; the dashboard and
//! service-integration never open a PostgreSQL connection.

use std::collections::BTreeMap;

use helix::platform::catalog;

use crate::support::proxy::Proxy;
use crate::support::spawn_app::spawn_app_with;
use crate::support::{spawn_app, TestBackends};

#[tokio::test]
async fn state_holds_only_declared_handles() {
    for spec in catalog::all().iter().filter(|s| s.port.is_some()) {
        let app = spawn_app(spec.name).await;
        assert_eq!(
            app.state.store().is_some(),
            spec.postgres.is_needed(),
            "{}: {:?}",
            spec.name,
            app.state
        );
        assert_eq!(
            app.state.bus().is_some(),
            spec.redis.is_needed(),
            "{}: {:?}",
            spec.name,
            app.state
        );
    }
}

/// DATABASE_URL points at a proxy that counts connections: services that declare no database
/// must leave it at zero, while backend-api (the control) must not.
#[tokio::test]
async fn services_without_a_database_never_connect_to_one() {
    let proxy = Proxy::start("127.0.0.1:5432".into()).await;
    let url = format!(
        "postgres://postgres:pw@127.0.0.1:{}/test",
        proxy.addr.port()
    );
    for service in [
        "dashboard",
        "service-integration",
        "websocket-streaming",
        "voice-processing",
    ] {
        let mut backends = TestBackends::new();
        backends.database_url = None;
        let extra = BTreeMap::from([
            ("DATABASE_URL".to_owned(), url.clone()),
            ("JWT_SECRET".to_owned(), "x".repeat(32)),
        ]);
        let app = spawn_app_with(service, backends, extra).await;
        assert_eq!(app.get_json("/health").await.0, 200);
        assert!(app.state.store().is_none());
        assert_eq!(
            proxy.accepted(),
            0,
            "{service} opened a database connection"
        );
    }
    if std::env::var("HELIX_TEST_DATABASE_URL").is_ok() {
        // The control: a service that needs the database does connect through the same proxy.
        let backends = TestBackends::new();
        let db = backends.database_url.clone().expect("set");
        let parsed = url::Url::parse(&db).expect("url");
        let via_proxy = format!(
            "postgres://{}@127.0.0.1:{}{}",
            parsed.username(),
            proxy.addr.port(),
            parsed.path()
        );
        let extra = BTreeMap::from([("DATABASE_URL".to_owned(), via_proxy)]);
        let app = spawn_app_with("backend-api", backends, extra).await;
        assert_eq!(app.get_json("/health").await.0, 200);
        assert!(proxy.accepted() > 0, "the control service did not connect");
    }
}
