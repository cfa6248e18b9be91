//! A tiny rate-limit service speaking Envoy's `RateLimitService` gRPC API, for end-to-end
//! tests: any descriptor entry whose value is `blocked` is over the limit.

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};

struct Service;

#[tonic::async_trait]
impl RateLimitService for Service {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let blocked = request
            .get_ref()
            .descriptors
            .iter()
            .flat_map(|d| &d.entries)
            .any(|e| e.value == "blocked");
        let code = if blocked { Code::OverLimit } else { Code::Ok };
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: code as i32,
            ..Default::default()
        }))
    }
}

/// Starts the service on a free loopback port on its own thread; returns the port.
pub fn start_rate_limit_service() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the rate-limit service");
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(
                    RateLimitServiceServer::new(Service),
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    std::future::pending::<()>(),
                )
                .await
        })
    });
    port
}
