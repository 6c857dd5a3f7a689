//! Metadata (round trip, never logged), X-HTTP-Method-Override and CORS.

use super::*;

// === metadata ===

#[tokio::test]
async fn metadata_round_trips_on_head_and_never_reaches_the_log() {
    let gw = Gateway::start(
        "[uploads]\nmax_size = \"1MiB\"\n\n[log]\nformat = \"json\"\nlevel = \"debug\"\n",
    );
    let tus = Tus::new(&gw);
    let name = "Jane-Doe-MRN-4711.dcm";
    let patient = "DOE^JANE^1961-04-01";
    let sent = format!(
        "filename {},patient {},flag",
        b64(name.as_bytes()),
        b64(patient.as_bytes())
    );
    let path = tus.create(Some(3), &[("upload-metadata", &sent)]).await;
    let head = tus.head(&path).await;
    assert_eq!(header(&head, "upload-metadata"), sent);
    // The canonical form: a key with an empty value comes back bare.
    let odd = format!("a ,b {}", b64(b"Jane"));
    let path2 = tus.create(Some(3), &[("upload-metadata", &odd)]).await;
    assert_eq!(
        header(&tus.head(&path2).await, "upload-metadata"),
        format!("a,b {}", b64(b"Jane"))
    );
    // Metadata survives the upload completing.
    assert_eq!(tus.patch_ok(&path, 0, b"abc").await, 3);
    assert_eq!(header(&tus.head(&path).await, "upload-metadata"), sent);
    // Malformed and oversized metadata: 400, without echoing it.
    let secret_bad = format!(
        "filename {},filename {}",
        b64(name.as_bytes()),
        b64(name.as_bytes())
    );
    let resp = tus
        .post(
            &[("upload-length", "3"), ("upload-metadata", &secret_bad)],
            Vec::new(),
        )
        .await;
    let rid = header(&resp, "x-request-id");
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("tus.metadata_invalid") && !text.contains(&b64(name.as_bytes())),
        "{text}"
    );
    let many: Vec<String> = (0..33)
        .map(|i| format!("k{i} {}", b64(patient.as_bytes())))
        .collect();
    problem(
        tus.post(
            &[("upload-length", "3"), ("upload-metadata", &many.join(","))],
            Vec::new(),
        )
        .await,
        400,
        "tus.metadata_too_large",
    )
    .await;
    let big = format!("filename {}", b64(&vec![b'x'; 8193]));
    problem(
        tus.post(
            &[("upload-length", "3"), ("upload-metadata", &big)],
            Vec::new(),
        )
        .await,
        400,
        "tus.metadata_too_large",
    )
    .await;
    // The log ran at debug level (the refusal above is in it), yet holds no metadata in
    // any form.
    let lines = gw.drain_stderr();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&rid) && l.contains("tus.metadata_invalid")),
        "no debug line for the refusal: {lines:#?}"
    );
    for needle in [
        name.to_owned(),
        patient.to_owned(),
        b64(name.as_bytes()),
        b64(patient.as_bytes()),
        "Jane".to_owned(),
        b64(b"Jane"),
    ] {
        assert!(
            !lines.iter().any(|l| l.contains(&needle)),
            "{needle} is in the log"
        );
    }
}

// === method override ===

#[tokio::test]
async fn x_http_method_override_turns_post_into_patch_or_delete() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let path = tus.create(Some(6), &[]).await;
    let resp = tus
        .request("POST", &path)
        .header("x-http-method-override", "PATCH")
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", OCTET)
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "upload-offset"), "3");
    assert_eq!(tus.offset(&path).await, 3);
    // The override carries the PATCH rules with it.
    let resp = tus
        .request("POST", &path)
        .header("x-http-method-override", "PATCH")
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", OCTET)
        .body("abc")
        .send()
        .await
        .unwrap();
    problem(resp, 409, "tus.offset_mismatch").await;
    // Any other override is not honoured: a POST to an upload's URL is not allowed.
    let resp = tus
        .request("POST", &path)
        .header("x-http-method-override", "HEAD")
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    problem(resp, 405, "request.method_not_allowed").await;
    let resp = tus
        .request("POST", &path)
        .header("x-http-method-override", "DELETE")
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(tus.head(&path).await.status(), 404);
    // Only on POST: a PATCH that asks to be a DELETE stays a PATCH.
    let path = tus.create(Some(6), &[]).await;
    let resp = tus
        .request("PATCH", &path)
        .header("x-http-method-override", "DELETE")
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", OCTET)
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(tus.offset(&path).await, 3);
}

// === CORS ===

#[tokio::test]
async fn cors_serves_allowed_origins_only() {
    let portal = "https://portal.example.org";
    let gw = Gateway::start(&format!(
        "[uploads]\nmax_size = \"1MiB\"\ncors_allowed_origins = [\"{portal}\"]\n"
    ));
    let tus = Tus::new(&gw);
    let path = tus.create(Some(6), &[]).await;
    let expose_needed = [
        "Location",
        "Upload-Offset",
        "Upload-Length",
        "Upload-Metadata",
        "Upload-Defer-Length",
        "Upload-Concat",
        "Upload-Expires",
        "Tus-Resumable",
        "Tus-Version",
        "Tus-Extension",
        "Tus-Max-Size",
        "Tus-Checksum-Algorithm",
        "Repr-Digest",
    ];
    let list = |v: String| -> Vec<String> {
        v.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect()
    };
    // Preflight from the allowed origin, on the creation URL and on an upload.
    for p in ["/files/", path.as_str()] {
        let resp = gw
            .client()
            .request(reqwest::Method::OPTIONS, gw.url(p))
            .header("origin", portal)
            .header("access-control-request-method", "PATCH")
            .header(
                "access-control-request-headers",
                "authorization,content-type,tus-resumable,upload-offset,upload-checksum,upload-metadata",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "a preflight answers 200: {:?}",
            resp.headers()
        );
        assert_eq!(header(&resp, "access-control-allow-origin"), portal);
        assert!(
            header(&resp, "vary")
                .to_ascii_lowercase()
                .contains("origin")
        );
        let methods = list(header(&resp, "access-control-allow-methods"));
        for m in ["post", "head", "patch", "delete", "get"] {
            assert!(methods.contains(&m.to_owned()), "{m}: {methods:?}");
        }
        let allowed = list(header(&resp, "access-control-allow-headers"));
        for h in [
            "authorization",
            "content-type",
            "tus-resumable",
            "upload-offset",
            "upload-checksum",
            "upload-metadata",
            "upload-length",
            "upload-defer-length",
            "upload-concat",
            "x-http-method-override",
        ] {
            assert!(allowed.contains(&h.to_owned()), "{h}: {allowed:?}");
        }
        let age: u64 = header(&resp, "access-control-max-age").parse().unwrap();
        assert!(age > 0);
    }
    // Actual requests from the allowed origin expose the tus headers, errors included.
    let resp = tus
        .request("POST", "/files/")
        .header("origin", portal)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "access-control-allow-origin"), portal);
    let exposed = list(header(&resp, "access-control-expose-headers"));
    for h in expose_needed {
        assert!(
            exposed.contains(&h.to_ascii_lowercase()),
            "{h}: {exposed:?}"
        );
    }
    for resp in [
        tus.request("HEAD", &path)
            .header("origin", portal)
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap(),
        tus.request("PATCH", &path)
            .header("origin", portal)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "5")
            .header("content-type", OCTET)
            .body("x")
            .send()
            .await
            .unwrap(),
        tus.request("PATCH", &path)
            .header("origin", portal)
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(header(&resp, "access-control-allow-origin"), portal);
        assert!(!header(&resp, "access-control-expose-headers").is_empty());
    }
    // Another origin, or none: no CORS grant at all (never `*`).
    for origin in [
        Some("https://evil.example"),
        Some("https://portal.example.org.evil.example"),
        Some("null"),
        None,
    ] {
        let mut pre = gw
            .client()
            .request(reqwest::Method::OPTIONS, gw.url("/files/"))
            .header("access-control-request-method", "PATCH");
        let mut real = tus.request("HEAD", &path).header("tus-resumable", "1.0.0");
        if let Some(o) = origin {
            pre = pre.header("origin", o);
            real = real.header("origin", o);
        }
        for resp in [pre.send().await.unwrap(), real.send().await.unwrap()] {
            assert!(resp.status().is_success());
            for h in [
                "access-control-allow-origin",
                "access-control-expose-headers",
                "access-control-allow-methods",
                "access-control-allow-headers",
                "access-control-allow-credentials",
            ] {
                assert_no(&resp, h);
            }
        }
    }
}
