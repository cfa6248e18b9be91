//! WebSocket echo on `/ws` (not implemented yet: answered with 501).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};

/// Answers a WebSocket upgrade request on `/ws`.
pub fn accept<B>(_req: Request<B>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(
        b"WebSocket echo not implemented",
    )));
    *response.status_mut() = StatusCode::NOT_IMPLEMENTED;
    response
}
