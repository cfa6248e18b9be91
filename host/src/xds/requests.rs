//! Reads an ADS stream's requests: gRPC length-prefixed messages in the HTTP/2 request
//! body, decoded with prost.
//!
//! tonic's `Streaming` keeps a buffer as large as the largest request of the stream for
//! the stream's life — an endpoint subscription of a couple of thousand names, ~100 KB per
//! proxy. This reader drops its buffer once it holds nothing and has grown past 8 KiB.

use std::marker::PhantomData;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tonic::Status;
use tonic::codegen::StdError;

/// The largest request accepted (tonic's default limit).
const MAX_REQUEST: usize = 4 << 20;

/// A buffer with nothing left in it and more capacity than this is released.
const KEEP_CAPACITY: usize = 8 << 10;

/// gRPC's message prefix: a compression flag and a big-endian length.
const PREFIX: usize = 5;

/// The requests of one stream, in order.
pub(crate) struct Requests<T> {
    body: UnsyncBoxBody<Bytes, StdError>,
    buf: BytesMut,
    /// The body ended or failed: nothing more is read.
    done: bool,
    message: PhantomData<fn() -> T>,
}

impl<T: prost::Message + Default> Requests<T> {
    /// Reads the requests of `body`.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<StdError>,
    {
        Self {
            body: body.map_err(Into::into).boxed_unsync(),
            buf: BytesMut::new(),
            done: false,
            message: PhantomData,
        }
    }

    /// The next request; `None` once the proxy closed its side. Cancel-safe: what was
    /// read stays buffered for the next call.
    pub async fn next(&mut self) -> Option<Result<T, Status>> {
        loop {
            match self.take_message() {
                Ok(Some(message)) => return Some(Ok(message)),
                Ok(None) => {}
                Err(status) => return Some(Err(self.fail(status))),
            }
            if self.done {
                return (!self.buf.is_empty()).then(|| {
                    Err(self.fail(Status::invalid_argument(
                        "the request stream ended inside a message",
                    )))
                });
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(Err(error)) => return Some(Err(self.fail(Status::from_error(error)))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Ends the stream with `status`.
    fn fail(&mut self, status: Status) -> Status {
        self.done = true;
        self.buf = BytesMut::new();
        status
    }

    /// Decodes the buffered message, if it is complete.
    fn take_message(&mut self) -> Result<Option<T>, Status> {
        let Some(prefix) = self.buf.get(..PREFIX) else {
            return Ok(None);
        };
        if prefix[0] != 0 {
            return Err(Status::unimplemented(
                "compressed requests are not supported",
            ));
        }
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if len > MAX_REQUEST {
            return Err(Status::out_of_range(format!(
                "a request of {len} bytes is larger than the limit of {MAX_REQUEST}"
            )));
        }
        let Some(body) = self.buf.get(PREFIX..PREFIX + len) else {
            self.buf.reserve(PREFIX + len - self.buf.len());
            return Ok(None);
        };
        let message = T::decode(body)
            .map_err(|e| Status::invalid_argument(format!("cannot decode the request: {e}")))?;
        self.buf.advance(PREFIX + len);
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        }
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
    use http_body::Frame;
    use http_body_util::StreamBody;
    use prost::Message;

    use super::*;

    fn framed(message: &DeltaDiscoveryRequest) -> Vec<u8> {
        let body = message.encode_to_vec();
        let mut out = vec![0];
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
        out
    }

    fn requests(chunks: Vec<Vec<u8>>) -> Requests<DeltaDiscoveryRequest> {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from(c))));
        Requests::new(StreamBody::new(tokio_stream::iter(frames)))
    }

    fn subscribe(n: usize) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: "t".into(),
            resource_names_subscribe: (0..n).map(|i| format!("kube_ns_svc-{i:05}_8080")).collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn messages_split_across_frames_and_sharing_frames_are_read_in_order() {
        let (big, ack) = (subscribe(2_000), subscribe(0));
        let mut bytes = framed(&big);
        bytes.extend(framed(&ack));
        bytes.extend(framed(&big));
        // Frames of 1,000 bytes: prefixes and messages cut anywhere.
        let mut reader = requests(bytes.chunks(1_000).map(<[u8]>::to_vec).collect());
        assert_eq!(reader.next().await.unwrap().unwrap(), big);
        assert_eq!(reader.next().await.unwrap().unwrap(), ack);
        assert_eq!(reader.next().await.unwrap().unwrap(), big);
        assert!(
            reader.buf.capacity() <= KEEP_CAPACITY,
            "the large buffer is released"
        );
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn a_compressed_or_oversized_or_truncated_request_ends_the_stream_with_a_reason() {
        let mut compressed = framed(&subscribe(1));
        compressed[0] = 1;
        let status = requests(vec![compressed])
            .next()
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);

        let huge = [0, 0x7f, 0, 0, 0].to_vec();
        let status = requests(vec![huge]).next().await.unwrap().unwrap_err();
        assert_eq!(status.code(), tonic::Code::OutOfRange);

        let mut cut = framed(&subscribe(10));
        cut.truncate(cut.len() - 3);
        let mut reader = requests(vec![cut]);
        let status = reader.next().await.unwrap().unwrap_err();
        assert!(status.message().contains("ended inside a message"));
        assert!(reader.next().await.is_none(), "nothing after the error");
    }
}
