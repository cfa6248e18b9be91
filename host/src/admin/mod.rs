//! The admin HTTP server of `weir serve` (HTTP/1 on `--admin-addr`, loopback by
//! default).
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | 200 while the process runs |
//! | `/readyz` | 503 until the first translation is published, then 200 |
//! | `/metrics` | Prometheus text ([`metrics`]) |
//! | `/debug/config?gateway=NS/NAME` | the resources that Gateway's proxies are served, as Envoy's `/config_dump` prints them, private keys redacted; 404 for a Gateway with no snapshot |
//! | `/debug/status` | the status of every input object, NACKs merged into Gateway status ([`crate::xds::merge_nacks`]) |
//!
//! [`respond`] is a plain function of the request and the [`AdminState`]; [`serve`] only
//! accepts connections and hands requests to it.

pub mod debug;
pub mod metrics;

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::xds::SnapshotCache;

pub use metrics::Metrics;

/// Every object's status, keyed by object.
pub use crate::translate::Statuses;

/// What the admin endpoints read. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// `true` once the first translation is published.
    pub ready: watch::Receiver<bool>,
    /// The metrics `/metrics` renders.
    pub metrics: Arc<Metrics>,
    /// The snapshots `/debug/config` renders.
    pub cache: SnapshotCache,
    /// The statuses `/debug/status` renders (NACKs already merged in).
    pub statuses: watch::Receiver<Arc<Statuses>>,
}

/// Serves admin requests on `listener` until `drain_rx` turns `true`.
pub async fn serve(listener: TcpListener, state: AdminState, mut drain_rx: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = drain_rx.wait_for(|drained| *drained) => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "admin accept failed");
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = respond(&req, &state);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "admin connection failed");
            }
        });
    }
}

/// The answer to one admin request.
pub fn respond<B>(req: &Request<B>, state: &AdminState) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if *state.ready.borrow() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no configuration published yet\n",
        ),
        "/metrics" => with_type(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            state.metrics.render(),
        ),
        "/debug/config" => debug_config(req.uri().query(), state),
        "/debug/status" => {
            let statuses = state.statuses.borrow().clone();
            json(StatusCode::OK, &debug::render_status(&statuses))
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /healthz, /readyz, /metrics, /debug/config?gateway=NS/NAME, /debug/status\n",
        ),
    }
}

fn debug_config(query: Option<&str>, state: &AdminState) -> Response<Full<Bytes>> {
    let rendered = debug::gateway_from_query(query).and_then(|gateway| {
        let snapshot = state
            .cache
            .get(&gateway)
            .ok_or_else(|| debug::unknown_gateway(&gateway, &state.cache.gateways()))?;
        debug::render_config(&gateway, &snapshot)
    });
    match rendered {
        Ok(value) => json(StatusCode::OK, &value),
        Err(debug::ConfigError::BadRequest(m)) => text(StatusCode::BAD_REQUEST, m + "\n"),
        Err(debug::ConfigError::UnknownGateway(m)) => text(StatusCode::NOT_FOUND, m + "\n"),
        Err(debug::ConfigError::Render(m)) => {
            tracing::error!(error = %m, "cannot render /debug/config");
            text(StatusCode::INTERNAL_SERVER_ERROR, m + "\n")
        }
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    with_type(status, "text/plain; charset=utf-8", body.into())
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    // A Value always serializes.
    let mut body = serde_json::to_string_pretty(value).unwrap_or_default();
    body.push('\n');
    with_type(status, "application/json", body)
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).unwrap()
    }

    fn mk_state(ready: bool) -> (AdminState, watch::Sender<Arc<Statuses>>) {
        let cache = SnapshotCache::new();
        let (_ready_tx, ready_rx) = watch::channel(ready);
        let (statuses_tx, statuses_rx) = watch::channel(Arc::new(Statuses::new()));
        let state = AdminState {
            ready: ready_rx,
            metrics: Arc::new(Metrics::new(Arc::default(), cache.clone())),
            cache,
            statuses: statuses_rx,
        };
        (state, statuses_tx)
    }

    fn body(response: Response<Full<Bytes>>) -> String {
        use http_body_util::BodyExt;
        let collected = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(response.into_body().collect())
            .unwrap();
        String::from_utf8(collected.to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn health_and_readiness() {
        let (not_ready, _) = mk_state(false);
        let (ready, _) = mk_state(true);
        assert_eq!(
            respond(&get("/readyz"), &not_ready).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(respond(&get("/readyz"), &ready).status(), StatusCode::OK);
        assert_eq!(
            respond(&get("/healthz"), &not_ready).status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&get("/nope"), &ready).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn debug_config_answers_404_for_an_unknown_gateway_and_400_without_one() {
        let (state, _) = mk_state(true);
        let missing = respond(&get("/debug/config?gateway=default/gw"), &state);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            body(missing),
            "Gateway default/gw is not served (known Gateways: none)\n"
        );
        assert_eq!(
            respond(&get("/debug/config"), &state).status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn debug_status_shows_the_current_statuses() {
        let (state, statuses_tx) = mk_state(true);
        let key = crate::model::ObjectKey::namespaced(Kind::HttpRoute, "default", "r");
        statuses_tx.send_replace(Arc::new(Statuses::from([(
            key,
            Arc::new(serde_json::json!({"parents": []})),
        )])));
        let response = respond(&get("/debug/status"), &state);
        assert_eq!(response.status(), StatusCode::OK);
        let value: serde_json::Value = serde_json::from_str(&body(response)).unwrap();
        assert_eq!(
            value["HTTPRoute/default/r"],
            serde_json::json!({"parents": []})
        );
    }
}
