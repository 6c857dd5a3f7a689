#![allow(clippy::unwrap_used, clippy::expect_used)]

//! A scoped publisher (`publish_for`, `publish_from_owners`) sees and revokes only the
//! grants and artifacts in its scope: showing one outside it is refused, a listing leaves
//! them out, and a revocation that would touch one is refused, audited, and revokes
//! nothing. (Issuing and registering within the scope: tests/mtls_identity.rs.)

mod support;

use serde_json::{Value, json};
use support::links::{
    PUBLISHER_TOKEN, actions, call, issue, register, stop_and_export_audit, upload_as,
};
use support::{LAB_TOKEN, UPLOADER_TOKEN, token_hash};

const SCOPED_TOKEN: &str = "test-scoped-publisher-token-0123456789abcdef";

fn code(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["code"].as_str())
}

fn grant_ids(page: &Value) -> Vec<&str> {
    page["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["grant"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_publisher_sees_and_revokes_only_grants_in_its_scope() {
    use reqwest::Method;
    let extra = format!(
        "[[clients]]\nname = \"scoped\"\ntoken_sha256 = \"{}\"\nroles = [\"publisher\"]\n\
         publish_for = [\"payer-a\"]\npublish_from_owners = [\"clinic\"]\n",
        token_hash(SCOPED_TOKEN)
    );
    let mut gw = support::links::start(&extra);
    let kind = "application/octet-stream";
    let clinic_upload = upload_as(&gw, UPLOADER_TOKEN, b"clinic's referral").await;
    let lab_upload = upload_as(&gw, LAB_TOKEN, b"lab's results").await;
    let (status, clinic) =
        register(&gw, json!({"upload": clinic_upload, "content_type": kind})).await;
    assert_eq!(status, 201, "{clinic}");
    let (status, lab) = register(&gw, json!({"upload": lab_upload, "content_type": kind})).await;
    assert_eq!(status, 201, "{lab}");
    let clinic = clinic["artifact"].as_str().unwrap().to_owned();
    let lab = lab["artifact"].as_str().unwrap().to_owned();

    // The unlimited publisher issues three grants: one in the scoped publisher's scope,
    // one for a partner outside it, one to an artifact whose owner is outside it.
    let grant = |v: Value| v["grant"].as_str().unwrap().to_owned();
    let in_scope = grant(issue(&gw, json!({"artifact": clinic, "partner": "payer-a"})).await);
    let other_partner = grant(issue(&gw, json!({"artifact": clinic, "partner": "payer-b"})).await);
    let other_owner = grant(issue(&gw, json!({"artifact": lab, "partner": "payer-a"})).await);

    // Showing.
    let shown = call(
        &gw,
        Method::GET,
        &format!("/v1/links/{in_scope}"),
        SCOPED_TOKEN,
        None,
    )
    .await;
    assert_eq!(shown.0, 200, "{}", shown.1);
    for (id, refusal) in [
        (&other_partner, "link.partner_out_of_scope"),
        (&other_owner, "artifact.owner_out_of_scope"),
    ] {
        let answer = call(
            &gw,
            Method::GET,
            &format!("/v1/links/{id}"),
            SCOPED_TOKEN,
            None,
        )
        .await;
        assert_eq!(code(&answer), (403, Some(refusal)), "{}", answer.1);
        // The unlimited publisher sees it.
        let answer = call(
            &gw,
            Method::GET,
            &format!("/v1/links/{id}"),
            PUBLISHER_TOKEN,
            None,
        )
        .await;
        assert_eq!(answer.0, 200, "{}", answer.1);
    }
    let answer = call(
        &gw,
        Method::GET,
        &format!("/v1/artifacts/{lab}"),
        SCOPED_TOKEN,
        None,
    )
    .await;
    assert_eq!(code(&answer), (403, Some("artifact.owner_out_of_scope")));
    let answer = call(
        &gw,
        Method::GET,
        &format!("/v1/artifacts/{clinic}"),
        SCOPED_TOKEN,
        None,
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);

    // Listing: the clinic artifact's grants without payer-b's; selectors outside refused.
    let page = call(
        &gw,
        Method::GET,
        &format!("/v1/links?artifact={clinic}"),
        SCOPED_TOKEN,
        None,
    )
    .await;
    assert_eq!(page.0, 200, "{}", page.1);
    assert_eq!(grant_ids(&page.1), [in_scope.as_str()]);
    let all = call(
        &gw,
        Method::GET,
        &format!("/v1/links?artifact={clinic}"),
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!(grant_ids(&all.1).len(), 2, "{}", all.1);
    let page = call(
        &gw,
        Method::GET,
        "/v1/links?partner=payer-a",
        SCOPED_TOKEN,
        None,
    )
    .await;
    assert_eq!(grant_ids(&page.1), [in_scope.as_str()], "{}", page.1);
    let answer = call(
        &gw,
        Method::GET,
        "/v1/links?partner=payer-b",
        SCOPED_TOKEN,
        None,
    )
    .await;
    assert_eq!(code(&answer), (403, Some("link.partner_out_of_scope")));
    let answer = call(
        &gw,
        Method::GET,
        &format!("/v1/links?artifact={lab}"),
        SCOPED_TOKEN,
        None,
    )
    .await;
    assert_eq!(code(&answer), (403, Some("artifact.owner_out_of_scope")));

    // Revoking: refused for a grant outside, and for a selector that would reach one.
    let refusals = [
        call(
            &gw,
            Method::DELETE,
            &format!("/v1/links/{other_partner}"),
            SCOPED_TOKEN,
            None,
        )
        .await,
        call(
            &gw,
            Method::DELETE,
            &format!("/v1/links/{other_owner}"),
            SCOPED_TOKEN,
            None,
        )
        .await,
        // The clinic artifact's grants include payer-b's.
        call(
            &gw,
            Method::POST,
            "/v1/links/revoke",
            SCOPED_TOKEN,
            Some(json!({"artifact": clinic, "reason": "compromised"})),
        )
        .await,
        // payer-a's grants include one to the lab's artifact.
        call(
            &gw,
            Method::POST,
            "/v1/links/revoke",
            SCOPED_TOKEN,
            Some(json!({"partner": "payer-a", "reason": "compromised"})),
        )
        .await,
        call(
            &gw,
            Method::POST,
            "/v1/links/revoke",
            SCOPED_TOKEN,
            Some(json!({"partner": "payer-b", "reason": "compromised"})),
        )
        .await,
    ];
    let codes: Vec<_> = refusals.iter().map(code).collect();
    assert_eq!(
        codes,
        [
            (403, Some("link.partner_out_of_scope")),
            (403, Some("artifact.owner_out_of_scope")),
            (403, Some("link.partner_out_of_scope")),
            (403, Some("artifact.owner_out_of_scope")),
            (403, Some("link.partner_out_of_scope")),
        ]
    );
    // Nothing was revoked.
    for id in [&in_scope, &other_partner, &other_owner] {
        let answer = call(
            &gw,
            Method::GET,
            &format!("/v1/links/{id}"),
            PUBLISHER_TOKEN,
            None,
        )
        .await;
        assert_eq!(answer.1["revoked"], Value::Null, "{id}: {}", answer.1);
    }
    // Its own grant it revokes.
    let answer = call(
        &gw,
        Method::DELETE,
        &format!("/v1/links/{in_scope}"),
        SCOPED_TOKEN,
        None,
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_ne!(answer.1["revoked"], Value::Null, "{}", answer.1);

    let audit = stop_and_export_audit(&mut gw);
    let refused: Vec<(&str, &str)> = actions(&audit, "publish.out_of_scope")
        .iter()
        .map(|e| {
            assert_eq!(e["outcome"], "denied");
            assert_eq!(e["actor"]["name"], "scoped");
            (
                e["details"]["attempt"].as_str().unwrap(),
                e["details"]["limit"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("link.revoke", "partner"),
            ("link.revoke", "owner"),
            ("link.revoke", "partner"),
            ("link.revoke", "owner"),
            ("link.revoke", "partner")
        ]
    );
    // One revocation was requested and done: the scoped publisher's own.
    assert_eq!(actions(&audit, "link.revoke_requested").len(), 1);
    assert_eq!(actions(&audit, "link.revoked").len(), 1);
}
