//! Reading a request body to its end before answering.
//!
//! Why: on TCP, closing a socket that still holds unread request bytes makes the kernel send RST and
//! throw away response bytes not yet delivered; and hyper only keeps a connection (and flushes
//! reliably) when the request was read to its end. So every request body is read to its end
//! before the response completes, errors included. The reading is bounded in bytes and time;
//! past the bound the answer carries `Connection: close` (see `shared/reference/delivery.md`).

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;

/// How draining a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// The body was read to its end; `bytes` were discarded.
    Complete { bytes: u64 },
    /// The bound in bytes or time was reached, or the body failed (client gone, bad chunking):
    /// the connection must not be reused.
    Abandoned { bytes: u64 },
}

impl Drained {
    /// Whether the connection can carry another request.
    pub(crate) fn is_complete(self) -> bool {
        matches!(self, Drained::Complete { .. })
    }
}

/// Reads and discards the rest of `body`, at most `max_bytes` bytes and for at most `timeout`.
pub(crate) async fn drain(body: &mut Incoming, max_bytes: u64, timeout: Duration) -> Drained {
    let mut bytes = 0u64;
    let read_all = async {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        bytes += data.len() as u64;
                        if bytes > max_bytes {
                            return false;
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "request body failed while draining");
                    return false;
                }
            }
        }
        true
    };
    let complete = matches!(tokio::time::timeout(timeout, read_all).await, Ok(true));
    if complete {
        Drained::Complete { bytes }
    } else {
        Drained::Abandoned { bytes }
    }
}
