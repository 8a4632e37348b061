//! The tower layers: [`BearerLayer`] authenticates every request with a [`Guard`](crate::Guard),
//! [`RequireScopeLayer`] checks the scopes of one route or one gRPC method further in. Each lives
//! in its own module with its service and response future, as tower-http lays out middleware.

/// `get_ref`, `get_mut` and `into_inner` for a service whose wrapped service is the field `inner`
/// (as tower-http defines them for each of its services).
macro_rules! define_inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// The inner service, consuming this one.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

pub mod bearer;
pub mod require_scope;

pub use bearer::{BearerLayer, BearerService};
pub use require_scope::{RequireScopeLayer, RequireScopeService};
