//! The claims of a token whose signature verified: the registered and scope claims with strict
//! types, and the payload itself for everything else.

use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use super::TokenError;

/// Most values one claim array (`aud`, `scp`, `permissions`, a custom scope claim) or one
/// space-separated `scope` string may hold. Larger ones refuse the token before more is allocated.
pub(crate) const MAX_CLAIM_VALUES: usize = 256;

/// The registered and scope claims, with strict JSON types. Read only from a payload that
/// [`parse`] accepted, so no member appears twice anywhere in it (`{"exp":1,"exp":9999999999}`,
/// or `"roles"` twice inside a nested object): no reader of the payload can resolve it
/// differently from another.
#[derive(Deserialize, Default)]
pub(crate) struct RawClaims {
    #[serde(default)]
    pub(crate) iss: Option<String>,
    #[serde(default)]
    pub(crate) sub: Option<String>,
    #[serde(default)]
    pub(crate) aud: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) exp: Option<NumericDate>,
    #[serde(default)]
    pub(crate) nbf: Option<NumericDate>,
    #[serde(default)]
    pub(crate) iat: Option<NumericDate>,
    #[serde(default)]
    pub(crate) jti: Option<String>,
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    #[serde(default)]
    pub(crate) azp: Option<String>,
    #[serde(default)]
    pub(crate) scope: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) scp: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) permissions: Option<OneOrMany>,
}

/// A JSON string or an array of at most [`MAX_CLAIM_VALUES`] strings (`aud`, `scp`, ...).
#[derive(Debug, Clone)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;
        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<String>()? {
                    if values.len() == MAX_CLAIM_VALUES {
                        return Err(de::Error::custom("too many values"));
                    }
                    values.push(value);
                }
                Ok(OneOrMany::Many(values))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

impl OneOrMany {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            OneOrMany::One(value) => (Some(value.as_str()), &[][..]),
            OneOrMany::Many(values) => (None, values.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }

    /// The values of a scope-like claim: a space-separated string, or an array of strings. `None`
    /// when a string holds more than [`MAX_CLAIM_VALUES`] scopes.
    pub(crate) fn into_scopes(self) -> Option<Vec<String>> {
        match self {
            OneOrMany::One(value) => {
                let scopes = value.split(' ').filter(|s| !s.is_empty());
                if scopes.clone().count() > MAX_CLAIM_VALUES {
                    return None;
                }
                Some(scopes.map(str::to_owned).collect())
            }
            OneOrMany::Many(values) => Some(values),
        }
    }
}

/// RFC 7519 NumericDate: seconds since the epoch, integer or fractional; any other JSON type fails.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub(crate) struct NumericDate(pub(crate) f64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumericDateVisitor;
        impl Visitor<'_> for NumericDateVisitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() {
                    Ok(NumericDate(v))
                } else {
                    Err(E::custom("NumericDate is not finite"))
                }
            }
        }
        deserializer.deserialize_any(NumericDateVisitor)
    }
}

/// Step 4a, after the signature verified: the claims, strictly typed, every member unique.
pub(crate) fn parse_claims(payload: &[u8]) -> Result<RawClaims, TokenError> {
    serde_json::from_slice::<RawClaims>(payload)
        .map_err(|_| claims_error::<RawClaims>(payload, "payload is not a JSON object of claims"))
}

/// Names the offending claim for logs by parsing `payload` as `T` again with the path tracked.
/// Runs only on the error path, so the tracking costs nothing for good tokens.
#[cold]
pub(super) fn claims_error<T: serde::de::DeserializeOwned>(
    payload: &[u8],
    otherwise: &'static str,
) -> TokenError {
    const KNOWN: [&str; 12] = [
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "client_id",
        "azp",
        "scope",
        "scp",
        "permissions",
    ];
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let err = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Err(err) if err.inner().is_data() => err,
        _ => return TokenError::Malformed(otherwise),
    };
    let message = err.inner().to_string();
    if let Some(name) = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.split('`').next())
    {
        return match KNOWN.into_iter().find(|known| *known == name) {
            Some(known) => TokenError::InvalidClaim(known),
            None => TokenError::Malformed("payload has a duplicate member"),
        };
    }
    let path = err.path().to_string();
    let field = path.split(['.', '[']).next().unwrap_or_default();
    match KNOWN.into_iter().find(|name| *name == field) {
        Some(name) => TokenError::InvalidClaim(name),
        None => TokenError::Malformed(otherwise),
    }
}

/// A verified payload: its bytes exactly as signed and, parsed once on first need, its JSON
/// document. The payload had every member unique when it was verified, so the document reads
/// the same values as the typed claims.
#[derive(Clone)]
pub(crate) struct Payload {
    pub(crate) bytes: Box<[u8]>,
    document: OnceLock<Option<Value>>,
}

impl Payload {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Payload {
            bytes: bytes.into_boxed_slice(),
            document: OnceLock::new(),
        }
    }

    /// The payload as JSON, parsed on the first call and kept.
    pub(crate) fn document(&self) -> Option<&Value> {
        self.document
            .get_or_init(|| serde_json::from_slice(&self.bytes).ok())
            .as_ref()
    }

    /// Heap bytes of the parsed document, if it was parsed (an estimate per node).
    pub(crate) fn document_heap_bytes(&self) -> usize {
        fn value_bytes(value: &Value) -> usize {
            const PER_NODE: usize = 48;
            PER_NODE
                + match value {
                    Value::String(text) => text.len(),
                    Value::Array(items) => items.iter().map(value_bytes).sum(),
                    Value::Object(members) => members
                        .iter()
                        .map(|(name, value)| name.len() + PER_NODE + value_bytes(value))
                        .sum(),
                    _ => 0,
                }
        }
        self.document
            .get()
            .and_then(Option::as_ref)
            .map_or(0, value_bytes)
    }
}

/// Claim names (or dotted paths into nested objects) an issuer is configured to read, in order.
#[derive(Clone, Debug)]
pub(crate) struct ClaimNames(Box<[Box<str>]>);

impl ClaimNames {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|name| &**name)
    }
}

impl<S: Into<String>> FromIterator<S> for ClaimNames {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> Self {
        ClaimNames(
            names
                .into_iter()
                .map(|name| name.into().into_boxed_str())
                .collect(),
        )
    }
}
