//! A server for `bench paths`, run on a tokio runtime of its own.
//!
//! Its own runtime is what lets the bench stop it as a process stops: dropping the
//! runtime ends every task the application spawned (the listener, the refresh and snapshot
//! timers, the campaign worker and any delivery), so the server started after it on the
//! same data directory is alone, as after a real restart. The bench's clients run on the
//! caller's runtime, as they would in another process.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::index::SaveWhen;
use crate::settings::Settings;
use crate::startup::Application;
use crate::state::AppState;

/// How long stopping waits for the old runtime's blocking tasks (an index read or a
/// store call in flight) before leaving them behind.
const STOP_WAIT: Duration = Duration::from_secs(30);

pub struct Server {
    /// `None` only once stopped.
    runtime: Option<Runtime>,
    state: AppState,
    port: u16,
}

impl Server {
    /// Builds the application (loading every account's index, from its snapshot when
    /// there is one) and serves it, on a new runtime with as many workers as `serve`
    /// would have.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("bench-server")
            .build()?;
        let settings = settings.clone();
        let (state, port) = runtime
            .spawn(async move {
                let app = Application::build(&settings).await?;
                let (state, port) = (app.state().clone(), app.port());
                tokio::spawn(app.run_until_stopped());
                anyhow::Ok((state, port))
            })
            .await??;
        Ok(Server {
            runtime: Some(runtime),
            state,
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs `work` on the server's runtime: the store's connections and the index's
    /// tasks belong to it.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the server is stopped"))?;
        Ok(runtime.spawn(work).await?)
    }

    /// Stops as `serve` does on SIGTERM: saves the index snapshots of every account
    /// written to, then ends every task. Returns how long saving took.
    pub async fn stop(mut self) -> anyhow::Result<Duration> {
        let index = self.state.index.clone();
        let started = Instant::now();
        self.run(async move { index.save_snapshots(SaveWhen::Changed).await })
            .await??;
        let saved = started.elapsed();
        if let Some(runtime) = self.runtime.take() {
            // Shutting down waits for blocking tasks, which a runtime worker must not do.
            tokio::task::spawn_blocking(move || runtime.shutdown_timeout(STOP_WAIT)).await?;
        }
        Ok(saved)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Dropped on an error path, inside the caller's runtime: a runtime may not be
        // dropped there (that would block), but it may be shut down in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
