//! The request stage: what is read from a request ([`source`]: the token, once) and what is
//! answered when it is refused ([`rejection`]: the rejection and its one renderer), plus the
//! marks the guard leaves on a request it admitted for the stages further in.

pub(crate) mod rejection;
pub(crate) mod source;

use std::any::TypeId;
use std::sync::Arc;

use http::{Extensions, HeaderMap, HeaderValue, Response};

use rejection::{EmptyBody, Protocol, Rejection, RejectionBody};

/// Left on every request the guard let through (with or without a token), so that scope checks
/// further in can tell "no token" from "the guard never ran" (a misconfiguration that must fail
/// closed) and render their challenges with the guard's realm.
#[derive(Clone, Copy)]
pub(crate) struct Admitted {
    pub(crate) realm: Option<&'static str>,
}

/// The application's [`RejectionBody`] for responses of body type `B`, left on the request by a
/// `BearerLayer` that has one, so that rejections rendered further in (scope checks, extractors)
/// are shaped the same way.
pub(crate) struct InheritedBody<B>(Arc<ShapeBody<B>>);

/// A [`RejectionBody`] with its type erased.
type ShapeBody<B> = dyn Fn(&Rejection) -> Option<(HeaderValue, B)> + Send + Sync;

impl<B> Clone for InheritedBody<B> {
    fn clone(&self) -> Self {
        InheritedBody(Arc::clone(&self.0))
    }
}

impl<B: 'static> InheritedBody<B> {
    /// `body` for the stages further in; `None` for the default empty body, which costs nothing
    /// to inherit.
    pub(crate) fn of<H: RejectionBody<B>>(body: &H) -> Option<Self> {
        if TypeId::of::<H>() == TypeId::of::<EmptyBody>() {
            return None;
        }
        let body = body.clone();
        Some(InheritedBody(Arc::new(move |rejection: &Rejection| {
            body.body(rejection)
        })))
    }
}

/// How rejections are rendered for one request that went through the guard (or should have): the
/// realm and body the guard left on it, the protocol its headers ask for. Every stage inside the
/// guard (scope checks, extractors) renders through this, so a rejection reads the same wherever
/// it is decided.
pub(crate) struct RenderContext<B> {
    realm: Option<&'static str>,
    protocol: Protocol,
    body: Option<InheritedBody<B>>,
}

impl<B> Clone for RenderContext<B> {
    fn clone(&self) -> Self {
        RenderContext {
            realm: self.realm,
            protocol: self.protocol,
            body: self.body.clone(),
        }
    }
}

impl<B> std::fmt::Debug for RenderContext<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderContext")
            .field("realm", &self.realm)
            .field("protocol", &self.protocol)
            .field("shaped_body", &self.body.is_some())
            .finish()
    }
}

impl<B: Default + 'static> RenderContext<B> {
    pub(crate) fn of_request(headers: &HeaderMap, extensions: &Extensions) -> Self {
        RenderContext {
            realm: extensions
                .get::<Admitted>()
                .and_then(|admitted| admitted.realm),
            protocol: Protocol::of(headers),
            body: extensions.get::<InheritedBody<B>>().cloned(),
        }
    }

    pub(crate) fn render(&self, rejection: &Rejection) -> Response<B> {
        match &self.body {
            Some(inherited) => rejection.render(self.realm, self.protocol, &*inherited.0),
            None => rejection.render(self.realm, self.protocol, &|_| None),
        }
    }
}
