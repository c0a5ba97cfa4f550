//! What `up` and `serve` share: open backends, bind, print the table, run until a signal.

use tokio_util::sync::CancellationToken;

use super::Failure;
use crate::app::App;
use crate::config::Settings;
use crate::platform::deployment::Deployment;
use crate::platform::supervisor;
use crate::platform::table::Table;

/// Start the deployment's services and run them until SIGINT/SIGTERM or a failure.
pub async fn run(
    settings: &Settings,
    deployment: Deployment,
    host: &str,
    migrate: bool,
) -> Result<(), Failure> {
    let app = App::open(deployment, settings, migrate).await?;
    let shutdown = CancellationToken::new();
    let units = match app.units(host).await {
        Ok(units) => units,
        Err(e) => {
            app.backends.close().await;
            return Err(e.into());
        }
    };
    print!("{}", started_table(&app, host));
    tokio::spawn(on_signal(shutdown.clone()));
    let result = supervisor::run(units, shutdown, settings.shutdown_timeout).await;
    app.backends.close().await;
    tracing::info!("all services stopped");
    result.map_err(Failure::Other)
}

fn started_table(app: &App, host: &str) -> String {
    let shown_host = if host == "0.0.0.0" || host == "::" {
        "127.0.0.1"
    } else {
        host
    };
    let mut table = Table::new(&["SERVICE", "URL", "DATABASE", "BUS"]);
    for planned in &app.deployment.services {
        let (db, bus) = app.backends.describe_for(planned);
        let url = planned.config.port.map_or_else(
            || "(no HTTP)".to_owned(),
            |p| format!("http://{shown_host}:{p}"),
        );
        table.row(vec![
            planned.env.spec.name.into(),
            url,
            db.unwrap_or_else(|| "-".into()),
            bus.unwrap_or_else(|| "-".into()),
        ]);
    }
    format!("{}\nPress Ctrl-C to stop.\n", table.render())
}

/// Cancel the token on the first SIGINT (Ctrl-C) or SIGTERM.
async fn on_signal(shutdown: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; stopping"),
        () = term => tracing::info!("SIGTERM received; stopping"),
    }
    shutdown.cancel();
}
