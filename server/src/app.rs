//! Start-up: database, indexes, ingest thread and the HTTP server, and their orderly stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use sea_orm::DatabaseConnection;

use crate::archive::{Archive, Archiver};
use crate::config::Config;
use crate::fleet::Fleet;
use crate::ingest::Ingest;
use crate::search::IndexRegistry;
use actix_web::middleware::from_fn;

use crate::hardening::{self, LoginLimiter};
use crate::metrics::Metrics;
use crate::retention::Retention;
use crate::{api, authz, dashboard, db, Error, Result};

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<IndexRegistry>,
    pub db: DatabaseConnection,
    pub metrics: Arc<Metrics>,
    pub fleet: Arc<Fleet>,
    /// The configuration the server was started with.
    pub config: Arc<Config>,
    /// Sign-in settings and the OpenID Connect providers' cached discovery documents.
    pub sso: Arc<crate::auth::oidc::Sso>,
    /// The archive's store and this server's rehydrates.
    pub archive: Arc<Archive>,
}

/// Runs the server until `shutdown` is set (or SIGINT/SIGTERM when `shutdown` is `None`).
pub async fn serve(config: Config, shutdown: Arc<AtomicBool>) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| Error::Io(format!("creating {}", config.data_dir.display()), e))?;
    let db = db::connect(&config.database_url()).await?;
    let registry = Arc::new(IndexRegistry::open(
        &config.index_dir(),
        config.ingest.writer_memory_mb,
    )?);

    let metrics = Metrics::new();
    let ingest = Ingest::new(
        config.clone(),
        registry.clone(),
        db.clone(),
        metrics.clone(),
    );
    let ingest_shutdown = shutdown.clone();
    let ingest_thread = std::thread::Builder::new()
        .name("ingest".into())
        .spawn(move || ingest.run(ingest_shutdown))
        .map_err(|e| Error::Io("starting the ingest thread".into(), e))?;

    let archive = Arc::new(Archive::open(&config, registry.clone(), db.clone()).await?);
    let archive_thread = if config.archive.enabled {
        let archiver = Archiver::new(
            config.clone(),
            archive.store.clone(),
            db.clone(),
            metrics.clone(),
        );
        let archive_shutdown = shutdown.clone();
        Some(
            std::thread::Builder::new()
                .name("archive".into())
                .spawn(move || archiver.run(archive_shutdown))
                .map_err(|e| Error::Io("starting the archive thread".into(), e))?,
        )
    } else {
        None
    };
    let retention = Retention::new(
        config.retention.clone(),
        registry.clone(),
        db.clone(),
        archive.kept.clone(),
    );
    let retention_task = tokio::spawn(retention.run(shutdown.clone()));
    let fleet = Arc::new(Fleet::new(&config, db.clone()).await);
    let fleet_task = tokio::spawn(fleet.clone().run(shutdown.clone()));
    let shared_config = Arc::new(config.clone());
    let state = AppState {
        registry,
        db,
        metrics,
        fleet,
        config: shared_config.clone(),
        sso: Arc::new(crate::auth::oidc::Sso::new(shared_config)),
        archive,
    };
    let limiter = web::Data::new(LoginLimiter::new(10, std::time::Duration::from_secs(300)));
    let server = HttpServer::new(move || {
        // Outermost last: headers on every response, then CSRF, login limits, then authz.
        App::new()
            .wrap(actix_web::middleware::ErrorHandlers::new().handler(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                crate::error::payload_too_large,
            ))
            .wrap(from_fn(authz::routes::enforce))
            .wrap(from_fn(hardening::limit_logins))
            .wrap(from_fn(hardening::same_origin_writes))
            .wrap(from_fn(hardening::security_headers))
            .app_data(web::Data::new(state.clone()))
            .app_data(limiter.clone())
            .app_data(web::JsonConfig::default().limit(hardening::MAX_BODY_BYTES))
            .app_data(web::FormConfig::default().limit(hardening::MAX_BODY_BYTES))
            .app_data(web::PayloadConfig::default().limit(hardening::MAX_BODY_BYTES))
            .configure(api::routes)
            .configure(dashboard::routes)
    })
    .disable_signals()
    .bind(&config.listen)
    .map_err(|e| Error::Io(format!("listening on {}", config.listen), e))?
    .run();
    let handle = server.handle();
    tracing::info!(listen = %config.listen, "serving");
    let server_task = tokio::spawn(server);

    let watched = shutdown.clone();
    let ingest_done = tokio::task::spawn_blocking(move || {
        let result = ingest_thread.join();
        // If ingest fails, the server stops too: a server that does not ingest is not healthy.
        watched.store(true, Ordering::SeqCst);
        result
    });
    while !shutdown.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    handle.stop(true).await;
    let _ = retention_task.await;
    let _ = fleet_task.await;
    let _ = server_task.await;
    if let Some(thread) = archive_thread {
        // Writes what it buffered, then commits its offsets.
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    match ingest_done.await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(Error::Internal("ingest thread panicked".into())),
        Err(e) => Err(Error::Internal(e.to_string())),
    }
}

/// Ctrl-C or SIGTERM sets the flag (the same handling as the shipper).
pub use bitesize_shipper::stop_on_signal;
