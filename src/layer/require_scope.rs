//! [`RequireScopeLayer`]: per-route (or per-gRPC-method) scope checks for any tower service.
//!
//! Put it inside a [`BearerLayer`](crate::BearerLayer): it reads the [`Claims`] the guard inserted
//! and answers `403 insufficient_scope` (gRPC: 7 PERMISSION_DENIED) when the token lacks the
//! scopes. Without claims it answers 401; if the guard never ran at all, that is a
//! misconfiguration, which is logged as an error and still answered with a 401 — never a 500 and
//! never a pass.
//!
//! For gRPC, one layer can hold a requirement per method path (`/pkg.Service/Method`):
//!
//! ```
//! use bearer_guard::{RequireScopeLayer, ScopeRequirement};
//!
//! let per_method = RequireScopeLayer::per_path()
//!     .path("/payments.v1.Payments/Get", ScopeRequirement::all_of(["payments:read"]))
//!     .path("/payments.v1.Payments/Create", ScopeRequirement::all_of(["payments:write"]));
//! // Methods not listed are refused unless a fallback is given:
//! let per_method = per_method.otherwise(ScopeRequirement::all_of(["payments:admin"]));
//! # let _ = per_method;
//! ```
//!
//! With axum, `route_layer(RequireScopeLayer::new(...))` guards one route; the
//! `RequireScope<S>` extractor (feature `axum`) does the same from a handler's signature.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::Claims;
use crate::http::rejection::Rejection;
use crate::http::{Admitted, RenderContext};
use crate::scope::{ScopeRequirement, ScopeSet};

/// What a [`RequireScopeLayer`] checks.
#[derive(Clone, Debug)]
enum Policy {
    /// One requirement for every request.
    Route(ScopeRequirement),
    /// A requirement per request path; `None` fallback means unlisted paths are refused.
    PerPath {
        paths: Vec<(Box<str>, ScopeRequirement)>,
        otherwise: Option<ScopeRequirement>,
    },
}

/// The requirement no token meets: for unlisted paths of a per-path policy.
static NOTHING_GRANTS: ScopeRequirement = ScopeRequirement::any_of_static(&[]);

impl Policy {
    fn requirement_for(&self, path: &str) -> &ScopeRequirement {
        match self {
            Policy::Route(requirement) => requirement,
            Policy::PerPath { paths, otherwise } => paths
                .iter()
                .find(|(candidate, _)| **candidate == *path)
                .map(|(_, requirement)| requirement)
                .or(otherwise.as_ref())
                .unwrap_or(&NOTHING_GRANTS),
        }
    }
}

/// A [`Layer`] that requires scopes of the verified token.
#[derive(Clone, Debug)]
pub struct RequireScopeLayer {
    policy: Arc<Policy>,
}

impl RequireScopeLayer {
    /// Require `requirement` for every request through this layer.
    pub fn new(requirement: ScopeRequirement) -> Self {
        RequireScopeLayer {
            policy: Arc::new(Policy::Route(requirement)),
        }
    }

    /// Require the scopes a [`ScopeSet`] type names (see [`scopes!`](crate::scopes)).
    pub fn of<S: ScopeSet>() -> Self {
        Self::new(S::requirement().clone())
    }

    /// Start a per-path policy (gRPC methods are paths: `/pkg.Service/Method`). Paths not
    /// listed are refused with `insufficient_scope` unless [`otherwise`](Self::otherwise) is set.
    pub fn per_path() -> Self {
        RequireScopeLayer {
            policy: Arc::new(Policy::PerPath {
                paths: Vec::new(),
                otherwise: None,
            }),
        }
    }

    /// Require `requirement` for requests to exactly `path`. On a layer made with
    /// [`new`](Self::new), its requirement becomes the one for all other paths.
    pub fn path(self, path: impl Into<String>, requirement: ScopeRequirement) -> Self {
        self.map_per_path(|paths, _| paths.push((path.into().into_boxed_str(), requirement)))
    }

    /// The requirement for paths not listed. Use [`ScopeRequirement::any_token`] to accept any
    /// valid token there.
    pub fn otherwise(self, requirement: ScopeRequirement) -> Self {
        self.map_per_path(|_, otherwise| *otherwise = Some(requirement))
    }

    fn map_per_path(
        self,
        change: impl FnOnce(&mut Vec<(Box<str>, ScopeRequirement)>, &mut Option<ScopeRequirement>),
    ) -> Self {
        let mut policy = match Arc::unwrap_or_clone(self.policy) {
            // `new(r).path(..)`: `r` becomes the requirement for every other path.
            Policy::Route(requirement) => Policy::PerPath {
                paths: Vec::new(),
                otherwise: Some(requirement),
            },
            per_path => per_path,
        };
        if let Policy::PerPath { paths, otherwise } = &mut policy {
            change(paths, otherwise);
        }
        RequireScopeLayer {
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopeService {
            inner,
            policy: Arc::clone(&self.policy),
        }
    }
}

/// The service [`RequireScopeLayer`] produces.
#[derive(Clone, Debug)]
pub struct RequireScopeService<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> RequireScopeService<S> {
    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopeService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let state = match check(&self.policy, &request) {
            Ok(()) => State::Allowed {
                future: self.inner.call(request),
            },
            Err(rejection) => State::Refused {
                response: Some(
                    RenderContext::of_request(request.headers(), request.extensions())
                        .render(&rejection),
                ),
            },
        };
        ResponseFuture { state }
    }
}

/// The scope decision for one request.
fn check<B>(policy: &Policy, request: &Request<B>) -> Result<(), Rejection> {
    let extensions = request.extensions();
    // Claims count only where the guard ran: anything else could have put them there.
    if extensions.get::<Admitted>().is_none() {
        tracing::error!(
            path = request.uri().path(),
            "RequireScopeLayer reached without BearerLayer in front of it: request refused"
        );
        return Err(Rejection::MissingToken);
    }
    let Some(claims) = extensions.get::<Claims>() else {
        return Err(Rejection::MissingToken);
    };
    let requirement = policy.requirement_for(request.uri().path());
    claims
        .check_scopes(requirement, request.uri().path())
        .map_err(Rejection::from)
}

pin_project! {
    /// The response future of [`RequireScopeService`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Allowed {
            #[pin]
            future: F,
        },
        Refused {
            response: Option<Response<B>>,
        },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Allowed { future } => future.poll(cx),
            StateProj::Refused { response } => {
                // Never an empty 200 in an authorization layer: a second poll is a bug.
                let response = response
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(response))
            }
        }
    }
}
