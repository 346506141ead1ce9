//! The operator's HTTP endpoint: Prometheus metrics and the kubelet's health probes.
//!
//! - `GET /metrics`: the registry in OpenMetrics text format.
//! - `GET /healthz` (liveness): 200 `ok` while the process is alive, 503 once [`Health::set_alive`]
//!   reported it is not (the kubelet then restarts the container).
//! - `GET /readyz` (readiness): 200 `ok` once [`Health::set_ready`] reported ready, else 503
//!   `not ready`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

/// Content type of the OpenMetrics text exposition format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Liveness and readiness of the process, as the probes report them. Cheap to clone (an `Arc`
/// inside); all clones share the same state. Starts alive and not ready.
#[derive(Clone, Debug)]
pub struct Health {
    inner: Arc<HealthState>,
}

#[derive(Debug)]
struct HealthState {
    alive: AtomicBool,
    ready: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Alive, not ready.
    pub fn new() -> Self {
        Health {
            inner: Arc::new(HealthState {
                alive: AtomicBool::new(true),
                ready: AtomicBool::new(false),
            }),
        }
    }

    /// Whether `/readyz` answers 200.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed)
    }

    /// Whether `/healthz` answers 200; `false` asks the kubelet to restart the container.
    pub fn set_alive(&self, alive: bool) {
        self.inner.alive.store(alive, Ordering::Relaxed);
    }

    pub fn is_alive(&self) -> bool {
        self.inner.alive.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    health: Health,
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown` completes, then
/// finishes the requests in flight and returns.
///
/// Taking a bound listener rather than an address lets the caller bind port 0 (tests) and
/// report a bind error before starting anything else.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(AppState { registry, health });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(_) => {
            tracing::error!("cannot encode the metrics registry");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").into_response()
        }
    }
}

async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.health.is_alive() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not alive")
    }
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.health.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn serves_metrics_and_probes_until_shutdown() {
        let (metrics, registry) = Metrics::new();
        metrics.reconciled("EventDestination", "success");
        let health = Health::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(registry),
            health.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        let http = reqwest::Client::new();
        let get = |path: &str| {
            let request = http.get(format!("{base}{path}"));
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_string());
                (status, content_type, response.text().await.unwrap())
            }
        };

        let (status, content_type, body) = get("/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(content_type.as_deref(), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(
            body.contains(
                r#"ngrok_events_operator_reconciles_total{kind="EventDestination",result="success"} 1"#
            ),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"));

        assert_eq!(get("/healthz").await, (200, ct_text(), "ok".into()));
        assert_eq!(get("/readyz").await, (503, ct_text(), "not ready".into()));
        health.set_ready(true);
        assert_eq!(get("/readyz").await, (200, ct_text(), "ok".into()));
        health.set_ready(false);
        assert_eq!(get("/readyz").await.0, 503);
        health.set_alive(false);
        assert_eq!(get("/healthz").await.0, 503);
        assert_eq!(get("/nope").await.0, 404);

        stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .expect("the server stops on shutdown")
            .unwrap()
            .unwrap();
    }

    fn ct_text() -> Option<String> {
        Some("text/plain; charset=utf-8".into())
    }

    #[test]
    fn health_starts_alive_and_not_ready() {
        let health = Health::default();
        assert!(health.is_alive());
        assert!(!health.is_ready());
        let clone = health.clone();
        clone.set_ready(true);
        assert!(health.is_ready());
    }
}
