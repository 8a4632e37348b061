//! tonic integration (feature `tonic`): reading the verified token in a gRPC handler.
//!
//! Put [`BearerLayer`](crate::BearerLayer) on the tonic `Server` (`Server::builder().layer(..)`)
//! and, for per-method scopes, a [`RequireScopeLayer::per_path`](crate::RequireScopeLayer::per_path)
//! keyed by `/package.Service/Method`. Rejections become `grpc-status` 16 UNAUTHENTICATED,
//! 7 PERMISSION_DENIED or, while the issuer's keys cannot be had, 14 UNAVAILABLE. In the handler, [`claims`] hands over the verified token, failing closed
//! with UNAUTHENTICATED if the layer is missing.
//!
//! ```
//! use bearer_guard::tonic::claims;
//!
//! fn handler(request: tonic::Request<()>) -> Result<tonic::Response<()>, tonic::Status> {
//!     let claims = claims(&request)?;
//!     tracing::info!(client_id = claims.client_id(), "called");
//!     Ok(tonic::Response::new(()))
//! }
//! // Without the layer there are no claims: the handler refuses.
//! let status = handler(tonic::Request::new(())).unwrap_err();
//! assert_eq!(status.code(), tonic::Code::Unauthenticated);
//! ```

use crate::claims::Claims;
use crate::http::Admitted;

/// The verified claims of a gRPC request, or UNAUTHENTICATED when there are none (the
/// [`BearerLayer`](crate::BearerLayer) did not run, or ran in optional mode without a token).
/// Claims count only where the guard ran: ones put in the extensions by anything else are refused.
pub fn claims<T>(request: &tonic::Request<T>) -> Result<Claims, tonic::Status> {
    let extensions = request.extensions();
    if extensions.get::<Admitted>().is_none() {
        tracing::error!("gRPC handler reached without BearerLayer in front of it: request refused");
        return Err(unauthenticated());
    }
    extensions
        .get::<Claims>()
        .cloned()
        .ok_or_else(unauthenticated)
}

fn unauthenticated() -> tonic::Status {
    tonic::Status::unauthenticated("A bearer access token is required")
}
