//! The tower layers: [`BearerLayer`] authenticates every request with a [`Guard`](crate::Guard),
//! [`RequireScopeLayer`] checks the scopes of one route or one gRPC method further in. Each lives
//! in its own module with its service and response future, as tower-http lays out middleware.

pub mod bearer;
pub mod require_scope;

pub use bearer::{BearerLayer, BearerService};
pub use require_scope::{RequireScopeLayer, RequireScopeService};
