//! The guard every target verifies against: one issuer, keys of every type, HMAC allowed, so all
//! key-selection and verification paths are reachable from fuzz input.

use std::sync::OnceLock;

use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, Guard, Issuer, KeySet};

pub const ISS: &str = "https://issuer.example";
pub const AUD: &str = "api";

pub struct Fixture {
    pub runtime: tokio::runtime::Runtime,
    pub guard: Guard,
    /// Signing keys for targets that mint tokens (`claims`); the others only verify.
    #[allow(dead_code)]
    pub keys: Vec<SigningKey>,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let keys: Vec<SigningKey> = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
            .into_iter()
            .map(|alg| SigningKey::generate(alg).expect("key"))
            .chain([SigningKey::hmac(Algorithm::HS256, &[7; 32]).with_kid(Some("hs"))])
            .collect();
        let key_set = keys
            .iter()
            .fold(KeySet::default(), |set, key| set.with(key.key_set()));
        let guard = runtime
            .block_on(
                Guard::builder()
                    .issuer(
                        Issuer::new(ISS)
                            .audience(AUD)
                            .algorithms(Algorithm::ALL)
                            .keys(key_set)
                            .scope_claims(["scope", "scp", "permissions", "realm_access.roles"]),
                    )
                    .allow_query_token(true)
                    .build(),
            )
            .expect("guard");
        Fixture {
            runtime,
            guard,
            keys,
        }
    })
}
