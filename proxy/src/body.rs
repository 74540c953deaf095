//! The two body types the proxy hands to hyper: [`RequestBody`] toward a
//! backend and [`ResponseBody`] toward the client. Both are enums rather than
//! boxed trait objects so the hot path allocates nothing for them, and both
//! stream frame by frame: nothing here buffers a whole body.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::balance::InFlight;
use crate::pool::Sender;

/// A request body on its way to a backend.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// The client sent no body; kept apart because an empty request can be
    /// sent again to another backend after a failed connect.
    Empty,
    /// The client's body, streamed through as it arrives.
    Stream(Incoming),
}

/// A response body on its way to the client.
#[derive(Debug)]
pub(crate) enum ResponseBody {
    /// A backend's body.
    Backend(BackendBody),
    /// A short message of our own (an error page); `None` once sent.
    Message(Option<Bytes>),
}

/// A backend's response body, streamed through. It keeps the request counted
/// against the backend until it is done or dropped, and checks the connection
/// back into the pool if the body ended cleanly.
#[derive(Debug)]
pub(crate) struct BackendBody {
    body: Incoming,
    in_flight: InFlight,
    sender: Option<Sender>,
    /// Set once `body` yielded its end: a chunked body does not say so itself.
    ended: bool,
}

// === impl RequestBody ===

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Stream(body) => body.size_hint(),
        }
    }
}

// === impl BackendBody ===

impl BackendBody {
    pub(crate) fn new(body: Incoming, in_flight: InFlight, sender: Sender) -> BackendBody {
        BackendBody {
            body,
            in_flight,
            sender: Some(sender),
            ended: false,
        }
    }
}

impl Drop for BackendBody {
    fn drop(&mut self) {
        // A body dropped half-read leaves its connection unusable: hyper
        // closes it, and it is not checked in.
        if (self.ended || self.body.is_end_stream())
            && let Some(sender) = self.sender.take()
        {
            self.in_flight.backend().pool().checkin(sender);
        }
    }
}

// === impl ResponseBody ===

impl ResponseBody {
    /// A body holding exactly `bytes`.
    pub(crate) fn message(bytes: Bytes) -> ResponseBody {
        ResponseBody::Message(Some(bytes))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResponseBody::Backend(backend) => {
                let frame = ready!(Pin::new(&mut backend.body).poll_frame(cx));
                backend.ended |= frame.is_none();
                Poll::Ready(frame)
            }
            ResponseBody::Message(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Backend(backend) => backend.ended || backend.body.is_end_stream(),
            ResponseBody::Message(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Backend(backend) => backend.body.size_hint(),
            ResponseBody::Message(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
