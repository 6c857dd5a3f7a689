#![allow(clippy::unwrap_used, clippy::expect_used)]
//! In-process handler tests: the gateway is built by `sallyport::app::build` exactly as
//! `serve` builds it (embedded state in a temp dir) and called through tower's `oneshot`,
//! with no socket and no TLS. These cover the cheap cases — routing, the error table,
//! authentication, the links and download flows — at a fraction of a black-box test's
//! cost; TLS, crashes and real clients stay in the black-box tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::body::Body;
use http::{Method, Request, Response, StatusCode};
use sallyport::http::body::read_capped;
use serde_json::{Value, json};
use tower::ServiceExt;

mod support;
use support::data::sha256_hex;
use support::token_hash;

const ADMIN: &str = "inprocess-admin-token-0123456789abcdefghijkl";
const UPLOADER: &str = "inprocess-uploader-token-0123456789abcdefgh";

struct Harness {
    app: sallyport::app::App,
    dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "data_dir = {:?}\n\
         [[clients]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nroles = [\"admin\"]\n\n\
         [[clients]]\nname = \"clinic\"\ntoken_sha256 = \"{}\"\nroles = [\"uploader\"]\n",
        dir.path().join("data").display().to_string(),
        token_hash(ADMIN),
        token_hash(UPLOADER),
    );
    let config = sallyport::config::Config::from_toml(&text, &BTreeMap::new()).unwrap();
    let app = sallyport::app::build(config).await.unwrap();
    Harness { app, dir }
}

impl Harness {
    async fn call(&self, req: Request<Body>) -> Response<Body> {
        let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        self.app.service(peer).oneshot(req).await.unwrap()
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let resp = self.call(req.body(body).unwrap()).await;
        let (parts, body) = resp.into_parts();
        let bytes = read_capped(None, body, 1 << 24).await.unwrap().to_vec();
        (parts.status, parts.headers, bytes)
    }

    fn import(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.path().join("data/import").join(name), bytes).unwrap();
    }
}

fn code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn health_routing_and_the_error_table() {
    let h = harness().await;
    let (s, _, b) = h.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["status"], "ok");

    let (s, hd, b) = h.send(Method::GET, "/nope", None, None).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::NOT_FOUND, "request.not_found")
    );
    assert_eq!(hd["content-type"], "application/problem+json");
    assert!(hd.contains_key("x-request-id"));

    let (s, hd, b) = h.send(Method::DELETE, "/v1/links", None, None).await;
    assert_eq!(s, 405);
    assert_eq!(hd["allow"], "GET, POST");
    assert_eq!(code(&b), "request.method_not_allowed");

    let (s, hd, b) = h.send(Method::GET, "/v1/whoami", None, None).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::UNAUTHORIZED, "auth.missing")
    );
    assert_eq!(hd["www-authenticate"], r#"Bearer realm="sallyport""#);

    let (s, hd, b) = h
        .send(
            Method::GET,
            "/v1/whoami",
            Some("wrong-token-wrong-token-wrong-token"),
            None,
        )
        .await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::UNAUTHORIZED, "auth.invalid")
    );
    assert!(
        hd["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // An uploader may not issue links; the refusal is audited (the chain grows).
    let (s, _, b) = h
        .send(Method::POST, "/v1/links", Some(UPLOADER), Some(json!({})))
        .await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::FORBIDDEN, "auth.missing_role")
    );
    let (s, _, b) = h
        .send(Method::GET, "/v1/audit/verify", Some(ADMIN), None)
        .await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["intact"], true);
    assert!(v["length"].as_u64().unwrap() >= 1, "{v}");
}

#[tokio::test]
async fn links_api_refusals_name_what_is_wrong_and_change_nothing() {
    let h = harness().await;
    let cases = [
        (
            json!({"artifact": "x", "partner": "clinic-a", "bogus": 1}),
            "request.bad_json",
        ),
        (
            json!({"artifact": "not-an-id", "partner": "clinic-a"}),
            "link.bad_artifact",
        ),
    ];
    for (body, want) in cases {
        let (s, _, b) = h
            .send(Method::POST, "/v1/links", Some(ADMIN), Some(body))
            .await;
        assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, want.to_owned()));
    }
    let (s, _, b) = h.send(Method::POST, "/v1/links", Some(ADMIN), None).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::BAD_REQUEST, "request.bad_json")
    );
    for query in [
        "colour=red",
        "partner=a&batch=b",
        "partner=clinic-a&limit=0",
    ] {
        let (s, _, b) = h
            .send(
                Method::GET,
                &format!("/v1/links?{query}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(
            (s, code(&b).as_str()),
            (StatusCode::BAD_REQUEST, "request.bad_query"),
            "{query}"
        );
    }
    let missing = format!("/v1/links/{}", sallyport::signed_link::GrantId::random());
    let (s, _, b) = h.send(Method::GET, &missing, Some(ADMIN), None).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::NOT_FOUND, "grant.not_found")
    );
    let (s, _, b) = h.send(Method::DELETE, &missing, Some(ADMIN), None).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::NOT_FOUND, "grant.not_found")
    );
    // serde builds a struct from an array of its fields too; a body is an object or refused,
    // before anything is looked up.
    for body in [json!([]), json!(["why"]), json!(["x", "clinic-a"])] {
        for (method, uri) in [
            (Method::DELETE, missing.as_str()),
            (Method::POST, "/v1/links"),
            (Method::POST, "/v1/links/revoke"),
        ] {
            let (s, _, b) = h
                .send(method.clone(), uri, Some(ADMIN), Some(body.clone()))
                .await;
            assert_eq!(
                (s, code(&b).as_str()),
                (StatusCode::BAD_REQUEST, "request.bad_json"),
                "{method} {uri} {body}"
            );
        }
    }
    let (s, _, b) = h
        .send(
            Method::POST,
            "/v1/links/revoke",
            Some(ADMIN),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::BAD_REQUEST, "link.bad_selector")
    );
    // Nothing was issued by any of that.
    let (s, _, b) = h
        .send(Method::GET, "/v1/links?partner=clinic-a", Some(ADMIN), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["grants"],
        json!([])
    );
}

#[tokio::test]
async fn publish_issue_download_and_revoke_in_process() {
    let h = harness().await;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    h.import("obs.ndjson", &data);
    let (s, _, b) = h
        .send(
            Method::POST,
            "/v1/artifacts",
            Some(ADMIN),
            Some(json!({"import": "obs.ndjson"})),
        )
        .await;
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    let art: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(art["length"], data.len());
    assert_eq!(art["sha256"], sha256_hex(&data));
    let id = art["artifact"].as_str().unwrap();

    let (s, _, b) = h
        .send(
            Method::GET,
            &format!("/v1/artifacts/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["artifact"], id);

    let (s, _, b) = h
        .send(
            Method::POST,
            "/v1/links",
            Some(ADMIN),
            Some(json!({"artifact": id, "partner": "payer-1"})),
        )
        .await;
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    let link: Value = serde_json::from_slice(&b).unwrap();
    let path = link["path"].as_str().unwrap().to_owned();
    let grant = link["grant"].as_str().unwrap().to_owned();

    let req = Request::get(&path)
        .header("range", "bytes=100-199")
        .body(Body::empty())
        .unwrap();
    let resp = h.call(req).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 100-199/{}", data.len())
    );
    assert!(
        resp.headers()["repr-digest"]
            .to_str()
            .unwrap()
            .starts_with("sha-256=:")
    );
    let body = read_capped(None, resp.into_body(), 1 << 24).await.unwrap();
    assert_eq!(&body[..], &data[100..200]);

    let req = Request::get(&path)
        .header("range", "bytes=999999-")
        .body(Body::empty())
        .unwrap();
    let resp = h.call(req).await;
    assert_eq!(resp.status(), 416);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes */{}", data.len())
    );

    let (s, _, b) = h
        .send(
            Method::DELETE,
            &format!("/v1/links/{grant}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["status"],
        "revoked"
    );
    let (s, _, b) = h.send(Method::GET, &path, None, None).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::FORBIDDEN, "link.refused")
    );
    // A forged signature is refused the same way.
    let forged = format!("{}x", path);
    let (s, _, b) = h.send(Method::GET, &forged, None, None).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::FORBIDDEN, "link.refused")
    );

    let (s, _, b) = h
        .send(Method::GET, "/v1/audit/verify", Some(ADMIN), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["intact"], true);
}

#[tokio::test]
async fn tus_options_and_refusals_carry_tus_headers() {
    let h = harness().await;
    let (s, hd, _) = h.send(Method::OPTIONS, "/files/", None, None).await;
    assert_eq!(s, 204);
    assert_eq!(hd["tus-version"], "1.0.0");
    assert!(hd["tus-extension"].to_str().unwrap().contains("creation"));

    let req = Request::post("/files/")
        .header("authorization", format!("Bearer {UPLOADER}"))
        .header("tus-resumable", "0.2.2")
        .header("upload-length", "10")
        .body(Body::empty())
        .unwrap();
    let resp = h.call(req).await;
    assert_eq!(resp.status(), 412);
    assert_eq!(resp.headers()["tus-version"], "1.0.0");
    assert_eq!(resp.headers()["tus-resumable"], "1.0.0");

    let req = Request::post("/files/")
        .header("authorization", format!("Bearer {UPLOADER}"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "11")
        .body(Body::empty())
        .unwrap();
    let resp = h.call(req).await;
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let req = Request::patch(location.as_str())
        .header("authorization", format!("Bearer {UPLOADER}"))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "3")
        .header("content-type", "application/offset+octet-stream")
        .body(Body::from("hello world"))
        .unwrap();
    let resp = h.call(req).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.headers()["upload-offset"], "0");
    assert!(resp.headers().contains_key("upload-expires"));
}

/// DELETE of an upload racing its registration as an artifact: never both succeed (an
/// artifact over a destroyed object). The DELETE checks for an artifact under the upload's
/// lease, and registration holds that lease from its check of the upload to its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_racing_a_registration_never_leaves_an_artifact_without_its_object() {
    let h = harness().await;
    let tus = |method: Method, uri: String| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {UPLOADER}"))
            .header("tus-resumable", "1.0.0")
    };
    let (mut deleted, mut registered) = (0, 0);
    for i in 0..40u32 {
        let body = format!("{{\"resourceType\":\"Patient\",\"id\":\"p{i}\"}}\n").into_bytes();
        let req = tus(Method::POST, "/files/".into())
            .header("upload-length", body.len().to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(Body::from(body.clone()))
            .unwrap();
        let resp = h.call(req).await;
        assert_eq!(resp.status(), 201);
        let id = resp.headers()["location"]
            .to_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        // Staggered so that both orders (and the overlaps between) occur: odd rounds hold
        // the DELETE back a little, even rounds the registration.
        let step = std::time::Duration::from_micros(u64::from(i % 8) * 400);
        let (delete_after, register_after) = if i % 2 == 1 {
            (step, std::time::Duration::ZERO)
        } else {
            (std::time::Duration::ZERO, step)
        };
        let delete = async {
            tokio::time::sleep(delete_after).await;
            h.call(
                tus(Method::DELETE, format!("/files/{id}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
        };
        let register = async {
            tokio::time::sleep(register_after).await;
            h.send(
                Method::POST,
                "/v1/artifacts",
                Some(ADMIN),
                Some(json!({"upload": id, "file_name": "p.ndjson"})),
            )
            .await
        };
        let (d, (r, _, rb)) = tokio::join!(delete, register);
        let (d, r) = (d.status().as_u16(), r.as_u16());
        assert!(
            !(d == 204 && r == 201),
            "round {i}: the upload was deleted and registered"
        );
        if r == 201 {
            registered += 1;
            // 409 upload.in_use, or 423 while the registration held the upload.
            assert!([409, 423].contains(&d), "round {i}: DELETE got {d}");
            let art: Value = serde_json::from_slice(&rb).unwrap();
            let uri = format!("/v1/artifacts/{}", art["artifact"].as_str().unwrap());
            let (s, _, _) = h.send(Method::GET, &uri, Some(ADMIN), None).await;
            assert_eq!(s, 200);
        } else {
            deleted += 1;
            assert_eq!(d, 204, "round {i}: neither happened ({r})");
            // 404 once it is gone, 409 upload.busy while the DELETE held it.
            assert!([404, 409].contains(&r), "round {i}: registration got {r}");
        }
    }
    eprintln!("{registered} registered first, {deleted} deleted first");
}

/// A complete upload nobody registered (or batched) is destroyed when
/// `uploads.completed_retention` ends, audited; a registered one stays, as does its
/// artifact.
#[tokio::test]
async fn completed_uploads_nobody_registered_are_retired_after_their_retention() {
    use sallyport::tus::dates::Timestamp;
    let h = harness().await;
    let upload = |bytes: &'static [u8]| {
        Request::builder()
            .method(Method::POST)
            .uri("/files/")
            .header("authorization", format!("Bearer {UPLOADER}"))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", bytes.len().to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(Body::from(bytes))
            .unwrap()
    };
    let id_of = |resp: &Response<Body>| {
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let head = |id: &str| {
        Request::builder()
            .method(Method::HEAD)
            .uri(format!("/files/{id}"))
            .header("authorization", format!("Bearer {UPLOADER}"))
            .header("tus-resumable", "1.0.0")
            .body(Body::empty())
            .unwrap()
    };
    let orphan = id_of(&h.call(upload(b"never registered\n")).await);
    let kept = id_of(&h.call(upload(b"{\"resourceType\":\"Patient\"}\n")).await);
    let (s, _, b) = h
        .send(
            Method::POST,
            "/v1/artifacts",
            Some(ADMIN),
            Some(json!({"upload": kept, "file_name": "p.ndjson"})),
        )
        .await;
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    let artifact = serde_json::from_slice::<Value>(&b).unwrap()["artifact"]
        .as_str()
        .unwrap()
        .to_owned();

    let uploads = &h.app.state.uploads;
    let now = Timestamp::now().unix();
    let at = |days: i64| Timestamp::from_unix(now + days * 86_400).unwrap();
    assert_eq!(uploads.sweep_expired_at(at(29)).await.unwrap(), 0);
    assert_eq!(h.call(head(&orphan)).await.status(), 200);
    assert_eq!(uploads.sweep_expired_at(at(31)).await.unwrap(), 1);
    assert_eq!(h.call(head(&orphan)).await.status(), 404);
    assert_eq!(h.call(head(&kept)).await.status(), 200);
    let (s, _, _) = h
        .send(
            Method::GET,
            &format!("/v1/artifacts/{artifact}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, 200);
    // Nothing more to do, and the trail verifies.
    assert_eq!(uploads.sweep_expired_at(at(40)).await.unwrap(), 0);
    let (s, _, b) = h
        .send(Method::GET, "/v1/audit/verify", Some(ADMIN), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["intact"], true);
    // The retirement entry, as every entry, matches the audit schema.
    let audit = support::audit_schema::assert_store(&**h.app.state.auditor.log()).await;
    let retired: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "upload.retired")
        .collect();
    assert_eq!(retired.len(), 1, "{retired:?}");
    assert_eq!(retired[0]["subject"], orphan.as_str());
}
