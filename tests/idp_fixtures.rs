//! Access tokens shaped like the ones real identity providers issue (`tests/fixtures/<idp>/`,
//! made by `tests/fixtures/generate.rs`), each verified by a guard configured the way a user would
//! configure it for that IdP: issuer, audience and the claims that carry scopes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bearer_guard::{Claims, Guard, Issuer, KeySet, TokenError};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// One IdP's fixture files.
struct Fixture {
    name: &'static str,
    token: &'static str,
    jwks: &'static str,
    payload: &'static str,
}

macro_rules! fixture {
    ($name:literal) => {
        Fixture {
            name: $name,
            token: include_str!(concat!("fixtures/", $name, "/token.jwt")),
            jwks: include_str!(concat!("fixtures/", $name, "/jwks.json")),
            payload: include_str!(concat!("fixtures/", $name, "/payload.json")),
        }
    };
}

const KEYCLOAK: Fixture = fixture!("keycloak");
const ENTRA_V1: Fixture = fixture!("entra_v1");
const ENTRA_V2: Fixture = fixture!("entra_v2");
const AUTH0: Fixture = fixture!("auth0");
const AUTH0_M2M: Fixture = fixture!("auth0_m2m");
const OKTA: Fixture = fixture!("okta");
const COGNITO: Fixture = fixture!("cognito");
const COGNITO_WITH_AUD: Fixture = fixture!("cognito_with_aud");

const ALL: [&Fixture; 8] = [
    &KEYCLOAK,
    &ENTRA_V1,
    &ENTRA_V2,
    &AUTH0,
    &AUTH0_M2M,
    &OKTA,
    &COGNITO,
    &COGNITO_WITH_AUD,
];

impl Fixture {
    fn token(&self) -> &'static str {
        self.token.trim()
    }

    fn keys(&self) -> Result<KeySet, Box<dyn std::error::Error>> {
        Ok(KeySet::from_jwks_json(self.jwks)?)
    }

    fn payload(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.payload)
    }

    /// A guard for `issuer` with this fixture's keys.
    async fn guard(&self, issuer: Issuer) -> Result<Guard, Box<dyn std::error::Error>> {
        Ok(Guard::builder()
            .issuer(issuer.keys(self.keys()?))
            .build()
            .await?)
    }

    /// Verify the fixture's token with a guard for `issuer`.
    async fn verify(&self, issuer: Issuer) -> Result<Claims, Box<dyn std::error::Error>> {
        Ok(self.guard(issuer).await?.verify(self.token()).await?)
    }
}

fn scopes(claims: &Claims) -> Vec<&str> {
    claims.scopes().iter().collect()
}

#[test]
fn every_fixture_token_carries_exactly_its_payload_and_its_jwks_loads() -> TestResult {
    for fixture in ALL {
        let encoded = fixture.token().split('.').nth(1).ok_or(fixture.name)?;
        let signed: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded)?)?;
        assert_eq!(
            signed,
            fixture.payload()?,
            "{}: token.jwt vs payload.json",
            fixture.name
        );
        assert_eq!(fixture.keys()?.len(), 1, "{}: jwks.json", fixture.name);
    }
    Ok(())
}

#[tokio::test]
async fn keycloak_service_account_token_scopes_from_realm_roles_and_scope() -> TestResult {
    let issuer =
        || Issuer::new("https://keycloak.example.com/realms/payments").audience("payments-api");
    let claims = KEYCLOAK
        .verify(issuer().scope_claims(["scope", "realm_access.roles"]))
        .await?;

    // No `client_id` claim (older Keycloak releases write `clientId`): the client is `azp`.
    assert_eq!(claims.client_id(), Some("billing-service"));
    assert!(claims.scopes().contains("payments:write"), "{claims:?}");
    assert!(claims.scopes().contains("payments:read"));
    assert!(
        claims.scopes().contains("profile"),
        "client scopes from `scope`"
    );
    assert!(
        !claims.scopes().contains("manage-account"),
        "resource_access not configured"
    );

    // With the default scope claims, realm roles are not scopes.
    let defaults = KEYCLOAK.verify(issuer()).await?;
    assert_eq!(scopes(&defaults), ["email", "profile"]);
    Ok(())
}

#[tokio::test]
async fn entra_v1_app_only_token_roles_are_scopes_with_jwks_without_alg() -> TestResult {
    let jwks: Value = serde_json::from_str(ENTRA_V1.jwks)?;
    assert!(
        jwks["keys"][0].get("alg").is_none(),
        "Entra publishes keys without alg"
    );

    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let claims = ENTRA_V1
        .verify(
            Issuer::new(format!("https://sts.windows.net/{tenant}/"))
                .audience("api://payments-api")
                .scope_claims(["scp", "roles"]),
        )
        .await?;

    assert_eq!(scopes(&claims), ["Payments.Read", "Payments.Write"]);
    // v1 names the calling app in `appid`, which the default client-id chain
    // (client_id → azp → sub) does not read: `client_id()` is the service principal (`sub`).
    assert_eq!(
        claims.client_id(),
        Some("4c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e7f")
    );
    // Configured as the Entra section of the README says, the app is the client.
    let configured = ENTRA_V1
        .verify(
            Issuer::new(format!("https://sts.windows.net/{tenant}/"))
                .audience("api://payments-api")
                .scope_claims(["scp", "roles"])
                .client_id_claims(["appid", "azp"]),
        )
        .await?;
    assert_eq!(
        configured.client_id(),
        Some("9b2f6c1d-3e4a-4f5b-8c7d-1a2b3c4d5e6f")
    );
    Ok(())
}

#[tokio::test]
async fn entra_v2_delegated_token_scp_string_is_scopes_and_azp_is_client() -> TestResult {
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let issuer = || {
        Issuer::new(format!("https://login.microsoftonline.com/{tenant}/v2.0"))
            .audience("6e74172b-be56-4843-9ff4-e66a39bb12e3")
    };
    let claims = ENTRA_V2.verify(issuer().scope_claims(["scp"])).await?;
    assert_eq!(scopes(&claims), ["Payments.Read", "Payments.Write"]);
    assert_eq!(
        claims.client_id(),
        Some("1f3c5a7e-9b2d-4f6a-8c0e-2b4d6f8a0c1e")
    );

    // An API that accepts app-only and delegated tokens reads both claims.
    let both = ENTRA_V2
        .verify(issuer().scope_claims(["scp", "roles"]))
        .await?;
    assert_eq!(
        scopes(&both),
        ["Payments.Approver", "Payments.Read", "Payments.Write"]
    );
    Ok(())
}

#[tokio::test]
async fn auth0_token_permissions_array_with_aud_array() -> TestResult {
    let issuer =
        || Issuer::new("https://payments.eu.auth0.com/").audience("https://api.payments.example");
    let claims = AUTH0.verify(issuer().scope_claims(["permissions"])).await?;

    assert_eq!(scopes(&claims), ["read:payments", "write:payments"]);
    assert!(
        !claims.scopes().contains("openid"),
        "OIDC scopes are not API permissions"
    );
    assert_eq!(claims.client_id(), Some("Zx8Kq2Lm4Np6Rt8Vw0Yb2Dc4Fg6Hj8Kl"));
    assert_eq!(claims.audiences().len(), 2);

    // The other audience in the array is not this API's.
    let other_api = AUTH0
        .guard(Issuer::new("https://payments.eu.auth0.com/").audience("https://api.other.example"))
        .await?;
    assert_eq!(
        other_api.verify(AUTH0.token()).await.unwrap_err(),
        TokenError::AudienceMismatch
    );
    Ok(())
}

#[tokio::test]
async fn auth0_m2m_token_scope_and_permissions_with_azp_client() -> TestResult {
    let claims = AUTH0_M2M
        .verify(
            Issuer::new("https://payments.eu.auth0.com/").audience("https://api.payments.example"),
        )
        .await?;
    assert_eq!(scopes(&claims), ["read:payments", "write:payments"]);
    assert_eq!(claims.client_id(), Some("Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz1Xc"));
    assert_eq!(
        claims.subject(),
        Some("Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz1Xc@clients")
    );
    Ok(())
}

#[tokio::test]
async fn okta_client_credentials_token_scp_array_and_cid() -> TestResult {
    let claims = OKTA
        .verify(
            Issuer::new("https://payments.okta.com/oauth2/aus1a2b3c4d5e6f7g8h9")
                .audience("api://payments")
                .scope_claims(["scp"]),
        )
        .await?;
    assert_eq!(scopes(&claims), ["payments:read", "payments:write"]);
    // For client credentials Okta's `sub` is the client id, so the default chain names the
    // client; configured with `cid` first (as for user tokens), it reads the same value.
    let cid = claims.get("cid");
    assert_eq!(claims.client_id(), cid.as_ref().and_then(Value::as_str));
    assert_eq!(claims.client_id(), Some("0oa1b2c3d4e5f6g7h8i9"));
    let configured = OKTA
        .verify(
            Issuer::new("https://payments.okta.com/oauth2/aus1a2b3c4d5e6f7g8h9")
                .audience("api://payments")
                .scope_claims(["scp"])
                .client_id_claims(["cid"]),
        )
        .await?;
    assert_eq!(configured.client_id(), Some("0oa1b2c3d4e5f6g7h8i9"));
    Ok(())
}

#[tokio::test]
async fn cognito_access_token_without_aud_is_rejected() -> TestResult {
    // Stock Cognito access tokens have no `aud` (the app client is in `client_id`). The guard
    // requires an audience, so they are refused until an audience is added to the token.
    let payload = COGNITO.payload()?;
    assert!(payload.get("aud").is_none());
    let guard = COGNITO
        .guard(
            Issuer::new("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Xq7pLm2Rk")
                .audience("3k7pq2r9s1t5u8v0w4x6y2z1a"),
        )
        .await?;
    assert_eq!(
        guard.verify(COGNITO.token()).await.unwrap_err(),
        TokenError::MissingClaim("aud")
    );
    Ok(())
}

#[tokio::test]
async fn cognito_access_token_with_aud_from_pre_token_lambda_is_accepted() -> TestResult {
    let claims = COGNITO_WITH_AUD
        .verify(
            Issuer::new("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Xq7pLm2Rk")
                .audience("https://api.payments.example"),
        )
        .await?;
    assert_eq!(claims.client_id(), Some("3k7pq2r9s1t5u8v0w4x6y2z1a"));
    assert_eq!(
        scopes(&claims),
        ["payments-api/payments.read", "payments-api/payments.write"]
    );
    assert_eq!(claims.get("token_use"), Some(Value::from("access")));
    Ok(())
}
