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
//! A request whose token is in the verified-token cache is decided in [`BearerService::call`]
//! itself, without allocating a future; any other token is verified in a boxed future, after
//! which the inner service is called. The application can shape rejection bodies with
//! [`BearerLayer::rejection_body`]; stages further in (scope checks, extractors) use the same.
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

use crate::claims::Claims;
use crate::guard::{Guard, Started};
use crate::http::rejection::{EmptyBody, Protocol, Rejection, RejectionBody};
use crate::http::{Admitted, InheritedBody};

/// A [`Layer`] that authenticates requests with a [`Guard`].
#[derive(Clone, Debug)]
pub struct BearerLayer<H = EmptyBody> {
    guard: Guard,
    optional: bool,
    body: H,
}

impl BearerLayer {
    /// Every request must carry a valid token.
    pub fn new(guard: Guard) -> Self {
        BearerLayer {
            guard,
            optional: false,
            body: EmptyBody,
        }
    }

    /// Requests without any token pass through without [`Claims`]; invalid tokens are rejected.
    pub fn optional(guard: Guard) -> Self {
        BearerLayer {
            guard,
            optional: true,
            body: EmptyBody,
        }
    }
}

impl<H> BearerLayer<H> {
    /// Shape the body of every rejection this layer, and the scope checks and extractors inside
    /// it, send (JSON problem details, say). Status, challenge and gRPC headers stay the guard's.
    ///
    /// ```
    /// use bearer_guard::{BearerLayer, Guard, Rejection};
    /// use http::HeaderValue;
    ///
    /// fn problem_details(rejection: &Rejection) -> Option<(HeaderValue, axum::body::Body)> {
    ///     let json = serde_json::json!({
    ///         "title": rejection.description(),
    ///         "status": rejection.status().as_u16(),
    ///     });
    ///     Some((HeaderValue::from_static("application/problem+json"), json.to_string().into()))
    /// }
    /// # fn layer(guard: Guard) {
    /// let layer = BearerLayer::new(guard).rejection_body(problem_details);
    /// # let _ = layer; }
    /// ```
    pub fn rejection_body<B, H2: RejectionBody<B>>(self, body: H2) -> BearerLayer<H2> {
        BearerLayer {
            guard: self.guard,
            optional: self.optional,
            body,
        }
    }
}

impl<S, H: Clone> Layer<S> for BearerLayer<H> {
    type Service = BearerService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            guard: self.guard.clone(),
            optional: self.optional,
            body: self.body.clone(),
        }
    }
}

/// The service [`BearerLayer`] produces.
#[derive(Clone, Debug)]
pub struct BearerService<S, H = EmptyBody> {
    inner: S,
    guard: Guard,
    optional: bool,
    body: H,
}

impl<S, H> BearerService<S, H> {
    define_inner_service_accessors!();
}

/// The verification of a token, which hands the request back with the outcome.
type Authentication<ReqBody> =
    Pin<Box<dyn Future<Output = (Request<ReqBody>, Result<Claims, Rejection>)> + Send>>;

impl<S, H, ReqBody, ResBody> Service<Request<ReqBody>> for BearerService<S, H>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    H: RejectionBody<ResBody>,
    ReqBody: Send + 'static,
    ResBody: Default + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, H>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let state = match self.guard.start(request.headers(), request.uri()) {
            // Decided now: the service driven to readiness serves the request at once.
            Started::Decided(outcome) => {
                match admit(&self.guard, self.optional, &self.body, request, outcome) {
                    Ok(request) => State::Calling {
                        future: self.inner.call(request),
                    },
                    Err(response) => State::Answered {
                        response: Some(response),
                    },
                }
            }
            // The ready service goes with the future; a fresh clone stays behind for the next call.
            Started::Verify(token) => {
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                let guard = self.guard.clone();
                State::Authenticating {
                    authentication: Box::pin(async move {
                        let outcome = guard.finish(&token).await;
                        (request, outcome)
                    }),
                    guard: self.guard.clone(),
                    optional: self.optional,
                    body: self.body.clone(),
                    service,
                }
            }
        };
        ResponseFuture { state }
    }
}

/// Let the request in with its claims, or answer it.
fn admit<ReqBody, ResBody: Default + 'static>(
    guard: &Guard,
    optional: bool,
    body: &impl RejectionBody<ResBody>,
    mut request: Request<ReqBody>,
    outcome: Result<Option<Claims>, Rejection>,
) -> Result<Request<ReqBody>, Response<ResBody>> {
    let claims = match outcome {
        Ok(None) if !optional => Err(Rejection::MissingToken),
        Ok(claims) => Ok(claims),
        Err(rejection) => Err(rejection),
    }
    .map_err(|rejection| {
        let protocol = Protocol::of(request.headers());
        rejection.render(guard.static_realm(), protocol, &|rejection| {
            body.body(rejection)
        })
    })?;
    let extensions = request.extensions_mut();
    // Only claims this guard verified reach the service, whatever an outer layer inserted.
    extensions.remove::<Claims>();
    if let Some(claims) = claims {
        extensions.insert(claims);
    }
    extensions.insert(Admitted {
        realm: guard.static_realm(),
    });
    if let Some(inherited) = InheritedBody::of(body) {
        extensions.insert(inherited);
    }
    Ok(request)
}

pin_project! {
    /// The response future of [`BearerService`].
    pub struct ResponseFuture<S, ReqBody, H = EmptyBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, H>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, H>
    where
        S: Service<Request<ReqBody>>,
    {
        // The token is being verified; the service readied for this request waits here and is
        // called through a reference once the request is admitted.
        Authenticating {
            authentication: Authentication<ReqBody>,
            guard: Guard,
            optional: bool,
            body: H,
            service: S,
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

impl<S, H, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, H>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    H: RejectionBody<ResBody>,
    ResBody: Default + 'static,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Authenticating {
                    authentication,
                    guard,
                    optional,
                    body,
                    service,
                } => {
                    let (request, outcome) = ready!(authentication.as_mut().poll(cx));
                    let request = match admit(guard, *optional, body, request, outcome.map(Some)) {
                        Ok(request) => request,
                        Err(response) => return Poll::Ready(Ok(response)),
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
