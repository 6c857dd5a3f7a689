//! Concatenation: partial and final uploads, 403 on PATCH of a final, the final's
//! whole-file digest and its copy of the parts' ledgers.

use super::*;

// === concatenation ===

#[tokio::test]
async fn concatenation_builds_a_final_upload_with_its_own_digest_and_the_parts_ledgers() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let a_bytes = data(200_000, 2);
    let b_bytes = data(150_001, 3);
    let partial = [("upload-concat", "partial")];
    let a = tus.create(Some(a_bytes.len() as u64), &partial).await;
    let b = tus.create(Some(b_bytes.len() as u64), &partial).await;
    assert_eq!(header(&tus.head(&a).await, "upload-concat"), "partial");
    let concat = format!("final;{a} {}", tus.url(&b));
    // A part that is not finished: 400 naming it.
    problem(
        tus.post(&[("upload-concat", &concat)], Vec::new()).await,
        400,
        "tus.concat_part",
    )
    .await;
    let resp = tus
        .patch(
            &a,
            0,
            a_bytes.clone(),
            &[("upload-checksum", &checksum("sha1", &a_bytes))],
        )
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(tus.patch_ok(&b, 0, &b_bytes[..100_000]).await, 100_000);
    assert_eq!(
        tus.patch_ok(&b, 100_000, &b_bytes[100_000..]).await,
        150_001
    );
    // Someone else's parts are refused like missing ones, even for an admin.
    for token in [LAB_TOKEN, ADMIN_TOKEN] {
        let other = Tus::as_token(&gw, token);
        problem(
            other.post(&[("upload-concat", &concat)], Vec::new()).await,
            400,
            "tus.concat_part",
        )
        .await;
    }
    // A final upload carries no length and no body.
    problem(
        tus.post(
            &[("upload-concat", &concat), ("upload-length", "350001")],
            Vec::new(),
        )
        .await,
        400,
        "tus.concat_invalid",
    )
    .await;
    problem(
        tus.post(
            &[("upload-concat", &concat), ("content-type", OCTET)],
            b"x".to_vec(),
        )
        .await,
        403,
        "tus.final_upload",
    )
    .await;
    let resp = tus.post(&[("upload-concat", &concat)], Vec::new()).await;
    assert_eq!(resp.status(), 201);
    let fin = location(&resp);
    let whole: Vec<u8> = [a_bytes.as_slice(), b_bytes.as_slice()].concat();
    let head = tus.head(&fin).await;
    assert_eq!(header(&head, "upload-concat"), format!("final;{a} {b}"));
    assert_eq!(header(&head, "upload-offset"), whole.len().to_string());
    assert_eq!(header(&head, "upload-length"), whole.len().to_string());
    assert_eq!(header(&head, "repr-digest"), repr_digest(&whole));
    assert_no(&head, "upload-expires");
    // PATCH on a final upload: 403, at any offset.
    for offset in [0, whole.len() as u64] {
        problem(
            tus.patch(&fin, offset, b"x".to_vec(), &[]).await,
            403,
            "tus.final_upload",
        )
        .await;
    }
    let expect_parts = serde_json::json!([
        {
            "upload": id_of(&a),
            "length": a_bytes.len(),
            "sha256": sha256_hex(&a_bytes),
        },
        {
            "upload": id_of(&b),
            "length": b_bytes.len(),
            "sha256": sha256_hex(&b_bytes),
        },
    ]);
    let check_ledger = |ledger: serde_json::Value| {
        assert_eq!(ledger["concat"], "final");
        assert_eq!(ledger["complete"], true);
        assert_eq!(ledger["sha256"], sha256_hex(&whole));
        assert_eq!(ledger["chunks"], serde_json::json!([]));
        let parts = ledger["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 2, "{ledger}");
        for (i, part) in parts.iter().enumerate() {
            for k in ["upload", "length", "sha256"] {
                assert_eq!(part[k], expect_parts[i][k], "part {i} {k}");
            }
        }
        let a_chunks = parts[0]["chunks"].as_array().unwrap();
        assert_eq!(a_chunks.len(), 1);
        assert_eq!(a_chunks[0]["checksum_verified"], "sha1");
        let b_chunks = parts[1]["chunks"].as_array().unwrap();
        assert_eq!(b_chunks.len(), 2);
        assert_eq!(b_chunks[1]["offset"], 100_000);
        assert_eq!(b_chunks[1]["sha256"], sha256_hex(&b_bytes[100_000..]));
    };
    check_ledger(tus.ledger(&fin).await);
    // A part named twice is refused (storage amplification); nothing is created.
    let resp = tus
        .post(
            &[("upload-concat", &format!("final;{b} {a} {b}"))],
            Vec::new(),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "tus.concat_invalid", "{body}");
    // The final upload is self-contained: deleting a part changes neither its bytes nor
    // its ledger.
    assert_eq!(tus.delete(&a).await.status(), 204);
    let head = tus.head(&fin).await;
    assert_eq!(header(&head, "repr-digest"), repr_digest(&whole));
    check_ledger(tus.ledger(&fin).await);
    // Parts summing past Tus-Max-Size: 413.
    let big = tus.create(Some(600_000), &partial).await;
    assert_eq!(tus.patch_ok(&big, 0, &vec![1u8; 600_000]).await, 600_000);
    let big2 = tus.create(Some(600_000), &partial).await;
    assert_eq!(tus.patch_ok(&big2, 0, &vec![2u8; 600_000]).await, 600_000);
    problem(
        tus.post(
            &[("upload-concat", &format!("final;{big} {big2}"))],
            Vec::new(),
        )
        .await,
        413,
        "tus.too_large",
    )
    .await;
    // A final upload is not a part.
    problem(
        tus.post(&[("upload-concat", &format!("final;{fin}"))], Vec::new())
            .await,
        400,
        "tus.concat_part",
    )
    .await;
    // URLs that are not ours are malformed.
    for bad in [
        "final;/other/0123456789abcdefghjkmnpqrs".to_owned(),
        format!("final;{b}/"),
        format!("final;{b}?x=1"),
        format!("final;{b}  {b}"),
        "final;".to_owned(),
        "partial;x".to_owned(),
    ] {
        problem(
            tus.post(&[("upload-concat", &bad)], Vec::new()).await,
            400,
            "tus.concat_invalid",
        )
        .await;
    }
}
