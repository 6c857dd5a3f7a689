#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The JSON API takes JSON bodies only when they say so: a body with another
//! `Content-Type` (the kinds a browser sends cross-origin without a preflight) or none is
//! `415 request.unsupported_media_type`, and nothing is created.

mod support;

use serde_json::{Value, json};
use support::UPLOADER_TOKEN;
use support::links::{PUBLISHER_TOKEN, import};

async fn post(
    gw: &support::Gateway,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut req = gw
        .client()
        .post(gw.url(path))
        .bearer_auth(token)
        .body(body.to_string());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_endpoints_refuse_bodies_that_do_not_say_they_are_json() {
    let gw = support::links::start("");
    let artifact = import(&gw, "export.ndjson", b"{\"resourceType\":\"Patient\"}\n").await;
    let link = json!({"artifact": artifact, "partner": "payer-a"});
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("text/json"),
    ] {
        let (status, body) = post(&gw, "/v1/links", PUBLISHER_TOKEN, ct, &link).await;
        assert_eq!(status, 415, "{ct:?}: {body}");
        assert_eq!(body["code"], "request.unsupported_media_type", "{ct:?}");
    }
    let (status, body) = post(
        &gw,
        "/v1/batches",
        UPLOADER_TOKEN,
        Some("text/plain"),
        &json!({"name": "referrals"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("request.unsupported_media_type")),
        "{body}"
    );

    // Nothing was issued by the refused requests; JSON with parameters is JSON.
    let grants = |gw: &support::Gateway| {
        let url = gw.url(&format!("/v1/links?artifact={artifact}"));
        let client = gw.client();
        async move {
            let page: Value = client
                .get(url)
                .bearer_auth(PUBLISHER_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            page["grants"].as_array().unwrap().len()
        }
    };
    assert_eq!(grants(&gw).await, 0);
    let (status, body) = post(
        &gw,
        "/v1/links",
        PUBLISHER_TOKEN,
        Some("Application/JSON; charset=utf-8"),
        &link,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(grants(&gw).await, 1);
}
