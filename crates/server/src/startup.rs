//! Building and running the application: store, state, listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use segmentd_store::Store;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::index::{Indexes, SaveWhen};
use crate::listener::{GuardedListener, PeerAddr};
use crate::settings::{DeliverySettings, Settings};
use crate::state::{AppState, Clock, SystemClock};

/// How often the clock of every index moves to now: the contacts whose events entered or
/// left a window since are re-decided (a cost in proportion to them), so membership that
/// time alone changes is never more than about a second late.
pub const REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Refreshes the indexes on a timer, for as long as the runtime lives.
async fn refresh_every(indexes: Arc<Indexes>, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        if let Err(e) = indexes.refresh().await {
            tracing::warn!(error = %e, "refreshing time-relative segments failed");
        }
    }
}

/// How often accounts are looked at for a snapshot that is due (`SaveWhen::Due`: writes
/// wait while one is written, about a second per million contacts).
pub const SNAPSHOT_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

async fn snapshot_every(indexes: Arc<Indexes>, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        if let Err(e) = indexes.save_snapshots(SaveWhen::Due).await {
            tracing::warn!(error = %e, "saving index snapshots failed");
        }
    }
}

async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Opens the store (migrating it) and binds the listener; port 0 picks a free port.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        if settings.uses_data_dir() {
            std::fs::create_dir_all(&settings.data_dir)?;
        }
        let store = segmentd_store::open(&settings.database_url()).await?;
        let mut app = Self::with_options(
            store,
            settings.listen,
            settings.delivery.clone(),
            Some(settings.data_dir.join("index")),
        )
        .await?;
        app.state.imports = Arc::new(crate::imports::ImportFiles::new(Some(
            settings.data_dir.join("imports"),
        ))?);
        Ok(app)
    }

    pub async fn with_store(store: Arc<dyn Store>, listen: SocketAddr) -> anyhow::Result<Self> {
        Self::with_store_and_delivery(store, listen, DeliverySettings::default()).await
    }

    /// As [`Application::with_store`], delivering campaigns as `delivery` says; campaigns
    /// left half-sent by a previous run are resumed.
    pub async fn with_store_and_delivery(
        store: Arc<dyn Store>,
        listen: SocketAddr,
        delivery: DeliverySettings,
    ) -> anyhow::Result<Self> {
        Self::with_options(store, listen, delivery, None).await
    }

    /// As [`Application::with_store_and_delivery`], keeping index snapshots in
    /// `snapshots` (loaded at start, saved on a timer and when stopped).
    pub async fn with_options(
        store: Arc<dyn Store>,
        listen: SocketAddr,
        mut delivery: DeliverySettings,
        snapshots: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let saves = snapshots.is_some();
        let index = Arc::new(Indexes::load(store.clone(), clock.clone(), snapshots).await?);
        tokio::spawn(refresh_every(index.clone(), REFRESH_INTERVAL));
        if saves {
            tokio::spawn(snapshot_every(index.clone(), SNAPSHOT_CHECK));
        }
        // Uploads in a temporary directory of this app's own; `build` puts them under
        // the data directory.
        let imports = crate::imports::ImportFiles::new(None)?;
        let interrupted = store
            .interrupt_imports(
                "the server stopped while the import ran; the batches stored before stay",
                clock.now(),
            )
            .await?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "imports left running by the last process failed"
            );
        }
        let listener = TcpListener::bind(listen).await?;
        if delivery.public_url.is_none() {
            delivery.public_url = Some(format!("http://{}", listener.local_addr()?));
        }
        let state = AppState {
            store,
            index,
            clock,
            catalogs: Arc::default(),
            campaigns: Arc::new(crate::campaigns::Delivery::new(delivery)),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
            cluster: None,
            imports: Arc::new(imports),
            computed_history: Arc::default(),
        };
        if state.campaigns.settings.worker {
            crate::campaigns::start_worker(state.clone()).await?;
        }
        Ok(Application { listener, state })
    }

    /// A cluster node (`serve --cluster`): PostgreSQL only; it holds the indexes of the
    /// accounts placed on it (none at first) and joins the others.
    pub async fn cluster_node(
        settings: &Settings,
        mut cluster: crate::cluster::ClusterSettings,
    ) -> anyhow::Result<Self> {
        let url = settings.database_url();
        let (store, control) = segmentd_store::open_cluster(&url, &cluster.node).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let index = Arc::new(Indexes::empty(store.clone(), clock.clone()));
        tokio::spawn(refresh_every(index.clone(), REFRESH_INTERVAL));
        let listener = TcpListener::bind(settings.listen).await?;
        let bound = listener.local_addr()?;
        let mut delivery = settings.delivery.clone();
        if delivery.public_url.is_none() {
            delivery.public_url = Some(format!("http://{bound}"));
        }
        let address = cluster
            .advertise
            .take()
            .unwrap_or_else(|| format!("http://{bound}"));
        let node = Arc::new(crate::cluster::Cluster::new(cluster, control, address));
        let state = AppState {
            store,
            index,
            clock,
            catalogs: Arc::default(),
            campaigns: Arc::new(crate::campaigns::Delivery::new(delivery)),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
            cluster: Some(node.clone()),
            // Imports of this node's own uploads; one left running by a stopped node is
            // not marked failed here (another node may be running it).
            imports: Arc::new(crate::imports::ImportFiles::new(Some(
                settings.data_dir.join("imports"),
            ))?),
            computed_history: Arc::default(),
        };
        crate::cluster::agent::start(state.clone(), node).await?;
        if state.campaigns.settings.worker {
            crate::campaigns::start_worker(state.clone()).await?;
        }
        Ok(Application { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        axum::serve(
            GuardedListener::new(self.listener),
            with_client_address(app(self.state)),
        )
        .await
    }

    /// Serves until SIGTERM or Ctrl-C, then lets requests in flight finish and saves the
    /// index snapshots, so that the next start replays nothing.
    pub async fn run_until_signalled(self) -> anyhow::Result<()> {
        let index = self.state.index.clone();
        let self_cluster = self.state.cluster.clone();
        axum::serve(
            GuardedListener::new(self.listener),
            with_client_address(app(self.state)),
        )
        .with_graceful_shutdown(stop_signal())
        .await?;
        if let Some(cluster) = &self_cluster {
            // Its accounts move at once rather than when the lease runs out.
            let _ = cluster.store.leave(cluster.node()).await;
        }
        tracing::info!("stopping: saving index snapshots");
        index.save_snapshots(SaveWhen::Changed).await?;
        Ok(())
    }
}

/// The router with each request's client address (`ConnectInfo`), which sign-in limits
/// count failures by.
fn with_client_address(
    router: Router,
) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, PeerAddr> {
    router.into_make_service_with_connect_info::<PeerAddr>()
}

/// No request runs longer than this (the freeze of a campaign to ten million contacts
/// is the longest one measured, about a minute); its work is dropped, and a write in it
/// rolls back.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

pub fn app(state: AppState) -> Router {
    Router::new()
        .nest("/api/v1", crate::api::router())
        .nest("/panel", crate::panel::router())
        .nest("/t", crate::tracking::router())
        .nest("/cluster", crate::cluster::status::router())
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/panel/segments") }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::cluster::forward::route,
        ))
        .layer(axum::middleware::from_fn(crate::guard::panel_no_store))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(crate::guard::spec_shaped_errors))
        .layer(axum::middleware::from_fn(crate::guard::refuse_bad_text))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
