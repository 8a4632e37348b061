//! Scopes: where they are read from in a token, the set a verified token carries, and what a route
//! requires.
//!
//! Matching is exact, token by token: `read` never satisfies `read:all`, `Read` is not `read`.
//!
//! ```
//! use bearer_guard::{ScopeRequirement, Scopes};
//!
//! let granted = Scopes::from_iter(["payments:read", "payments:write"]);
//! assert!(ScopeRequirement::all_of(["payments:read"]).is_satisfied_by(&granted));
//! assert!(ScopeRequirement::any_of(["admin", "payments:write"]).is_satisfied_by(&granted));
//! assert!(!ScopeRequirement::all_of(["payments"]).is_satisfied_by(&granted));
//! assert!(ScopeRequirement::any_token().is_satisfied_by(&Scopes::default()));
//! ```

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use crate::token::{ClaimNames, MAX_CLAIM_VALUES, OneOrMany, Payload, RawClaims, TokenError};

/// The scopes a verified token grants: a sorted, de-duplicated set of scope tokens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Scopes(Box<[Box<str>]>);

impl Scopes {
    /// Whether the token grants exactly this scope.
    pub fn contains(&self, scope: &str) -> bool {
        self.0
            .binary_search_by(|probe| (**probe).cmp(scope))
            .is_ok()
    }

    /// The scopes, in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|scope| &**scope)
    }

    /// How many distinct scopes the token grants.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the token grants no scope at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: Into<String>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut scopes: Vec<Box<str>> = iter
            .into_iter()
            .map(|scope| scope.into().into_boxed_str())
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        Scopes(scopes.into_boxed_slice())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Space-separated, as in the `scope` claim and the `scope` challenge parameter.
impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_space_separated(f, self.iter())
    }
}

fn write_space_separated<'a>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = &'a str>,
) -> fmt::Result {
    for (index, item) in items.enumerate() {
        if index > 0 {
            f.write_str(" ")?;
        }
        f.write_str(item)?;
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    AllOf,
    AnyOf,
}

/// The scopes a route needs: all of a list, or any one of a list.
///
/// Built at run time from strings, or in a `const` from `'static` slices (which is what the axum
/// `scopes!` declarations use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeRequirement {
    mode: Mode,
    scopes: Cow<'static, [Cow<'static, str>]>,
}

impl ScopeRequirement {
    /// Every one of `scopes` must be granted.
    pub fn all_of<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Cow<'static, str>>,
    {
        Self::owned(Mode::AllOf, scopes)
    }

    /// At least one of `scopes` must be granted.
    pub fn any_of<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Cow<'static, str>>,
    {
        Self::owned(Mode::AnyOf, scopes)
    }

    /// [`all_of`](Self::all_of) for a `const` list.
    pub const fn all_of_static(scopes: &'static [Cow<'static, str>]) -> Self {
        ScopeRequirement {
            mode: Mode::AllOf,
            scopes: Cow::Borrowed(scopes),
        }
    }

    /// [`any_of`](Self::any_of) for a `const` list.
    pub const fn any_of_static(scopes: &'static [Cow<'static, str>]) -> Self {
        ScopeRequirement {
            mode: Mode::AnyOf,
            scopes: Cow::Borrowed(scopes),
        }
    }

    fn owned<I, S>(mode: Mode, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Cow<'static, str>>,
    {
        ScopeRequirement {
            mode,
            scopes: Cow::Owned(scopes.into_iter().map(Into::into).collect()),
        }
    }

    /// Whether `granted` meets this requirement. An empty all-of list is always met; an empty
    /// any-of list never is.
    pub fn is_satisfied_by(&self, granted: &Scopes) -> bool {
        let mut required = self.scopes.iter().map(|scope| granted.contains(scope));
        match self.mode {
            Mode::AllOf => required.all(|granted| granted),
            Mode::AnyOf => required.any(|granted| granted),
        }
    }

    /// Check `granted`, or say which scopes were needed.
    pub fn check(&self, granted: &Scopes) -> Result<(), InsufficientScope> {
        if self.is_satisfied_by(granted) {
            Ok(())
        } else {
            Err(InsufficientScope {
                required: self.clone(),
            })
        }
    }

    /// The required scopes, in declaration order.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(|scope| &**scope)
    }

    /// Whether any one of the scopes suffices (rather than all of them).
    pub fn is_any_of(&self) -> bool {
        self.mode == Mode::AnyOf
    }

    /// The requirement every valid token meets (no scope needed): for per-path policies whose
    /// unlisted paths should accept any authenticated caller.
    pub const fn any_token() -> Self {
        ScopeRequirement::all_of_static(&[])
    }

    /// For logs: `all of a b`, `one of a b`, or `any token`.
    pub(crate) fn describe(&self) -> impl fmt::Display + '_ {
        struct Describe<'r>(&'r ScopeRequirement);
        impl fmt::Display for Describe<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match (self.0.scopes.is_empty(), self.0.mode) {
                    (true, Mode::AllOf) => f.write_str("any token"),
                    (_, Mode::AllOf) => write!(f, "all of {}", self.0),
                    (_, Mode::AnyOf) => write!(f, "one of {}", self.0),
                }
            }
        }
        Describe(self)
    }
}

/// Space-separated list of the required scopes: the RFC 6750 `scope` parameter of a 403
/// challenge. RFC 6750 §3 has one `scope` attribute for "the scope necessary to access the
/// resource"; for an any-of requirement it lists every alternative, and a token granting any one
/// of them is served (the log line says "one of" or "all of").
impl fmt::Display for ScopeRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_space_separated(f, self.scopes())
    }
}

/// A verified token lacks the scopes a route requires. Rendered as `403 insufficient_scope`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("insufficient scope: {} {required}", if required.is_any_of() { "one of" } else { "all of" })]
pub struct InsufficientScope {
    required: ScopeRequirement,
}

impl InsufficientScope {
    /// What the route required.
    pub fn required(&self) -> &ScopeRequirement {
        &self.required
    }
}

/// The claims an issuer's tokens carry scopes in (configured per issuer).
#[derive(Clone, Debug)]
pub(crate) struct ScopeClaims(pub(crate) ClaimNames);

impl Default for ScopeClaims {
    /// `scope` (RFC 8693/9068), `scp` (Entra ID, Okta) and `permissions` (Auth0).
    fn default() -> Self {
        ScopeClaims(ClaimNames::from_iter(["scope", "scp", "permissions"]))
    }
}

impl ScopeClaims {
    /// The union of the scopes in every configured claim. Each claim may be a space-separated
    /// string or an array of strings (at most [`MAX_CLAIM_VALUES`] each); anything else rejects
    /// the token. Custom claims are read from the payload's document, parsed once.
    pub(crate) fn collect(
        &self,
        claims: &mut RawClaims,
        payload: &Payload,
    ) -> Result<Vec<String>, TokenError> {
        let mut scopes = Vec::new();
        for path in self.0.iter() {
            let (name, value) = match path {
                "scope" => ("scope", claims.scope.take()),
                "scp" => ("scp", claims.scp.take()),
                "permissions" => ("permissions", claims.permissions.take()),
                custom => {
                    let document = payload.document().ok_or(TokenError::Malformed(
                        "payload is not a JSON object of claims",
                    ))?;
                    let value = lookup(document, custom)
                        .filter(|value| !value.is_null())
                        .map(scope_value)
                        .transpose()?;
                    ("scope", value)
                }
            };
            if let Some(value) = value {
                scopes.extend(value.into_scopes().ok_or(TokenError::InvalidClaim(name))?);
            }
        }
        Ok(scopes)
    }
}

/// A claim by name, or by a dotted path into nested objects (`realm_access.roles`). A top-level
/// claim whose name contains dots (`https://example.com/roles`) wins over the nested reading.
fn lookup<'v>(document: &'v Value, path: &str) -> Option<&'v Value> {
    let object = document.as_object()?;
    if let Some(value) = object.get(path) {
        return Some(value);
    }
    path.split('.')
        .try_fold(document, |node, segment| node.as_object()?.get(segment))
}

fn scope_value(value: &Value) -> Result<OneOrMany, TokenError> {
    match value {
        Value::String(scopes) => Ok(OneOrMany::One(scopes.clone())),
        Value::Array(items) if items.len() > MAX_CLAIM_VALUES => {
            Err(TokenError::InvalidClaim("scope"))
        }
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(OneOrMany::Many)
            .ok_or(TokenError::InvalidClaim("scope")),
        _ => Err(TokenError::InvalidClaim("scope")),
    }
}

/// A scope requirement named by a type, so a route can state it in its signature
/// (`RequireScope<PaymentsRead>`). Declare implementations with [`scopes!`](crate::scopes).
pub trait ScopeSet: Send + Sync + 'static {
    /// The requirement this type stands for.
    fn requirement() -> &'static ScopeRequirement;
}

/// Declares [`ScopeSet`] types: one unit struct per requirement.
///
/// ```
/// use bearer_guard::{ScopeSet, Scopes};
///
/// bearer_guard::scopes! {
///     /// Read access to payments.
///     pub PaymentsRead = "payments:read";
///     /// Administrators.
///     pub Admin = any_of["admin", "root"];
///     pub Settle = all_of["payments:read", "payments:settle"];
/// }
///
/// let granted = Scopes::from_iter(["payments:read", "root"]);
/// assert!(PaymentsRead::requirement().is_satisfied_by(&granted));
/// assert!(Admin::requirement().is_satisfied_by(&granted));
/// assert!(!Settle::requirement().is_satisfied_by(&granted));
/// ```
#[macro_export]
macro_rules! scopes {
    () => {};
    ($(#[$meta:meta])* $vis:vis $name:ident = $scope:literal; $($rest:tt)*) => {
        $crate::scopes!(@declare $(#[$meta])* $vis $name, all_of_static, [$scope]);
        $crate::scopes!($($rest)*);
    };
    ($(#[$meta:meta])* $vis:vis $name:ident = all_of [$($scope:literal),+ $(,)?]; $($rest:tt)*) => {
        $crate::scopes!(@declare $(#[$meta])* $vis $name, all_of_static, [$($scope),+]);
        $crate::scopes!($($rest)*);
    };
    ($(#[$meta:meta])* $vis:vis $name:ident = any_of [$($scope:literal),+ $(,)?]; $($rest:tt)*) => {
        $crate::scopes!(@declare $(#[$meta])* $vis $name, any_of_static, [$($scope),+]);
        $crate::scopes!($($rest)*);
    };
    (@declare $(#[$meta:meta])* $vis:vis $name:ident, $constructor:ident, [$($scope:literal),+]) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default)]
        $vis struct $name;
        impl $crate::ScopeSet for $name {
            fn requirement() -> &'static $crate::ScopeRequirement {
                static REQUIREMENT: $crate::ScopeRequirement = $crate::ScopeRequirement::$constructor(&[
                    $(::std::borrow::Cow::Borrowed($scope)),+
                ]);
                &REQUIREMENT
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_say_whether_one_or_all_scopes_are_needed() {
        let any = ScopeRequirement::any_of(["inventory:admin", "inventory:write"]);
        assert_eq!(
            any.describe().to_string(),
            "one of inventory:admin inventory:write"
        );
        let all = ScopeRequirement::all_of(["a", "b"]);
        assert_eq!(all.describe().to_string(), "all of a b");
        assert_eq!(
            ScopeRequirement::any_token().describe().to_string(),
            "any token"
        );
        // The challenge lists the alternatives either way.
        assert_eq!(any.to_string(), "inventory:admin inventory:write");
    }
}
