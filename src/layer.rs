//! [`BearerLayer`]: authenticate every request before the inner service sees it.
//!
//! The layer finds the bearer token, verifies it with the [`Guard`], inserts the verified
//! [`Claims`] into the request extensions and calls the inner service. Anything else is answered
//! by the layer itself: a 400/401/503 with an RFC 6750 challenge, or for gRPC requests an HTTP 200
//! carrying `grpc-status`. The rejection body is `ResBody::default()`, so the same layer wraps an
//! axum `Router`, a hyper service or a tonic server unchanged.
//!
//! In [optional](BearerLayer::optional) mode a request without any token is let through without
//! claims; a request with a token that fails verification is still rejected.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bearer_guard::testing::SigningKey;
//! use bearer_guard::{Algorithm, BearerLayer, Claims, Guard, Issuer};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let key = SigningKey::generate(Algorithm::ES256)?;
//! let guard = Guard::builder()
//!     .issuer(Issuer::new("https://issuer.example").audience("api").keys(key.key_set()))
//!     .build()
//!     .await?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(BearerLayer::new(guard))
//!     .service(service_fn(|request: Request<String>| async move {
//!         let claims = request.extensions().get::<Claims>().expect("the layer ran");
//!         Ok::<_, std::convert::Infallible>(Response::new(format!("hello {:?}", claims.client_id())))
//!     }));
//!
//! let token = key.token("https://issuer.example", "api").sign()?;
//! let request = Request::get("/").header("authorization", format!("Bearer {token}")).body(String::new())?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let anonymous = Request::get("/").body(String::new())?;
//! let response = service.oneshot(anonymous).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::challenge::Rejection;
use crate::claims::Claims;
use crate::guard::Guard;

/// Marks a request the guard has looked at, so scope checks further in can tell "no token" from
/// "the guard never ran" (a misconfiguration), and render challenges with the guard's realm.
#[derive(Clone, Copy)]
pub(crate) struct Authenticated {
    /// The guard's realm, for challenges rendered further in.
    pub(crate) realm: Option<&'static str>,
}

/// A [`Layer`] that authenticates requests with a [`Guard`].
#[derive(Clone, Debug)]
pub struct BearerLayer {
    guard: Guard,
    optional: bool,
}

impl BearerLayer {
    /// Every request must carry a valid token.
    pub fn new(guard: Guard) -> Self {
        BearerLayer {
            guard,
            optional: false,
        }
    }

    /// Requests without any token pass through without [`Claims`]; invalid tokens are rejected.
    pub fn optional(guard: Guard) -> Self {
        BearerLayer {
            guard,
            optional: true,
        }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            guard: self.guard.clone(),
            optional: self.optional,
        }
    }
}

/// The service [`BearerLayer`] produces.
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    guard: Guard,
    optional: bool,
}

type Authentication<B> =
    Pin<Box<dyn Future<Output = (Request<B>, Result<Option<Claims>, Rejection>)> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BearerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone that was driven to readiness serves this request; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // Repeated tokens (the common case) are decided here, without allocating a future.
        if let Some(outcome) = self
            .guard
            .authenticate_cached(request.headers(), request.uri())
        {
            let state = match admit(&self.guard, self.optional, request, outcome) {
                Ok(request) => State::Calling {
                    future: inner.call(request),
                },
                Err(response) => State::Answered {
                    response: Some(response),
                },
            };
            return ResponseFuture { state };
        }
        let guard = self.guard.clone();
        let authentication: Authentication<ReqBody> = Box::pin(async move {
            let outcome = guard.authenticate(request.headers(), request.uri()).await;
            (request, outcome)
        });
        ResponseFuture {
            state: State::Authenticating {
                authentication,
                inner: Some(inner),
                guard: self.guard.clone(),
                optional: self.optional,
            },
        }
    }
}

/// Let the request in with its claims, or answer it.
fn admit<B, R: Default>(
    guard: &Guard,
    optional: bool,
    mut request: Request<B>,
    outcome: Result<Option<Claims>, Rejection>,
) -> Result<Request<B>, Response<R>> {
    let claims = match outcome {
        Ok(None) if !optional => Err(Rejection::MissingToken),
        Ok(claims) => Ok(claims),
        Err(rejection) => Err(rejection),
    }
    .map_err(|rejection| guard.reject(&rejection, request.headers()))?;
    let extensions = request.extensions_mut();
    // Only claims this guard verified reach the service, whatever an outer layer inserted.
    extensions.remove::<Claims>();
    if let Some(claims) = claims {
        extensions.insert(claims);
    }
    extensions.insert(Authenticated {
        realm: guard.static_realm(),
    });
    Ok(request)
}

pin_project! {
    /// The response future of [`BearerService`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Authenticating {
            authentication: Authentication<ReqBody>,
            inner: Option<S>,
            guard: Guard,
            optional: bool,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Answered {
            response: Option<S::Response>,
        },
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Authenticating {
                    authentication,
                    inner,
                    guard,
                    optional,
                } => {
                    let (request, outcome) = ready!(authentication.as_mut().poll(cx));
                    let request = match admit(guard, *optional, request, outcome) {
                        Ok(request) => request,
                        Err(response) => return Poll::Ready(Ok(response)),
                    };
                    let Some(mut service) = inner.take() else {
                        unreachable!("the state moves to Calling as soon as the service is taken");
                    };
                    let future = service.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Answered { response } => {
                    // Never an empty 200 in an authentication layer: a second poll is a bug.
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
