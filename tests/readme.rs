//! The README's first-screen test, verbatim: an axum API tested with `TestIssuer`.

use axum::{Router, routing::get};
use bearer_guard::axum::{BearerLayer, Guard, Issuer, RequireScope};
use bearer_guard::testing::TestIssuer;
use tower::ServiceExt;

bearer_guard::scopes! {
    InventoryRead = "inventory:read";
    /// Either scope will do.
    InventoryChange = any_of["inventory:write", "inventory:admin"];
}

async fn list(_: RequireScope<InventoryRead>) -> &'static str {
    "[]"
}

async fn restock(_: RequireScope<InventoryChange>) -> &'static str {
    "restocked"
}

#[tokio::test]
async fn inventory_needs_its_scopes() {
    let issuer = TestIssuer::builder()
        .audience("inventory-api")
        .start()
        .await
        .unwrap();
    let guard = Guard::builder()
        .issuer(
            Issuer::new(issuer.issuer_url())
                .audience("inventory-api")
                .discover(),
        )
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/items", get(list).post(restock))
        .layer(BearerLayer::new(guard));

    let call = |method: &str, token: String| {
        http::Request::builder()
            .method(method)
            .uri("/items")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let reader = issuer.mint().scope("inventory:read").sign().unwrap();
    let response = app
        .clone()
        .oneshot(call("GET", reader.clone()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app.clone().oneshot(call("POST", reader)).await.unwrap();
    assert_eq!(response.status(), 403);
    let admin = issuer.mint().scope("inventory:admin").sign().unwrap();
    let response = app.oneshot(call("POST", admin)).await.unwrap();
    assert_eq!(response.status(), 200);
}
