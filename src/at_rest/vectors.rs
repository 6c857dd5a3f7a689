//! Golden vectors: `proto/vectors/at-rest-v1.json` is rebuilt here from its fixed inputs
//! (with the test-only fixed-nonce sealer) and must match byte for byte; and the stored
//! bytes it lists are opened and must give back its plaintext.
//!
//! To regenerate after a deliberate format change (which needs a new format version):
//! `SALLYPORT_WRITE_VECTORS=1 cargo test --lib at_rest::vectors`, then review the diff and
//! run `python3 proto/vectors/at_rest_v1_check.py` (an independent implementation).
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::encoder::{Resume, SegmentEncoder};
use super::format::{Header, SegmentSize, segment_aad};
use super::tail::{TailRecord, TailState};
use crate::ids::OpaqueId;
use crate::keys::kek_set::{wrap_aad, wrap_with_nonce};
use crate::keys::record::DekRecord;
use crate::keys::{Dek, DekPurpose, KekRef, WrapContext};

const VECTOR_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/vectors/at-rest-v1.json");
const PLAINTEXT: &[u8; 40] = b"Sallyport golden vector, forty bytes :-)";
const SEGMENT_SIZE: u32 = 16;
/// The tail record vector: the state after committing this many bytes.
const TAIL_COMMITTED: usize = 21;
/// The noted tail record vector's commit note (version 2, `proto/at-rest-v1.md` §4.3).
const TAIL_NOTE: &[u8] = b"{\"commit\":\"what it means\"}";

fn seq(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start + i as u8)
}

fn build() -> Value {
    let kek_key = seq(0x00);
    let dek_bytes = seq(0x20);
    let dek_id: [u8; 16] = std::array::from_fn(|i| 0x40 + i as u8);
    let object = OpaqueId::from_bytes(std::array::from_fn(|i| 0x50 + i as u8));
    let salt = seq(0x60);
    let wrap_nonce: [u8; 12] = std::array::from_fn(|i| 0xa0 + i as u8);
    let segment_nonces: Vec<[u8; 12]> = (1..=3).map(|i| [i; 12]).collect();
    let tail_nonce = [0xee; 12];
    let noted_nonce = [0xef; 12];
    let kek = KekRef {
        id: "vector".parse().unwrap(),
        version: 1,
    };
    let ctx = WrapContext {
        object,
        dek_id,
        purpose: DekPurpose::ObjectData,
    };

    let wrapped = wrap_with_nonce(&kek_key, &ctx, &dek_bytes, &kek, wrap_nonce);
    let record = DekRecord {
        dek_id,
        purpose: DekPurpose::ObjectData,
        wrapped,
    };

    let dek = Dek::from_bytes(Zeroizing::new(dek_bytes));
    let s = SegmentSize::new(SEGMENT_SIZE).unwrap();
    let (header, mut keys) = Header::with_salt(object, dek_id, s, salt, &dek).unwrap();
    let (segment_key, tail_key) = super::format::derived_keys_for_vectors(&dek, &header);
    keys.fix_nonces(
        &segment_key,
        &tail_key,
        segment_nonces.clone(),
        vec![tail_nonce, noted_nonce],
    );

    let mut encoder = SegmentEncoder::new(keys, 1 << 20, Resume::empty());
    assert_eq!(encoder.push(PLAINTEXT).unwrap(), PLAINTEXT.len());
    encoder.seal_final().unwrap();
    let body = encoder.batch().to_vec();
    let mut data_blob = header.encode().to_vec();
    data_blob.extend_from_slice(&body);
    let segments: Vec<Value> = (0..3u64)
        .map(|i| {
            let is_final = i == 2;
            let start = i as usize * 44;
            let end = if is_final { body.len() } else { start + 44 };
            json!({
                "index": i,
                "final": is_final,
                "aad_hex": hex::encode(segment_aad(&object, i, is_final)),
                "stored_hex": hex::encode(&body[start..end]),
            })
        })
        .collect();

    let mut hasher = Sha256::new();
    hasher.update(&PLAINTEXT[..TAIL_COMMITTED]);
    let tail = TailRecord {
        state: TailState::Open,
        generation: 2,
        full_segments: 1,
        plaintext_len: TAIL_COMMITTED as u64,
        last_nonce: segment_nonces[0],
        midstate: TailRecord::midstate_of(&hasher),
        partial: Zeroizing::new(PLAINTEXT[16..TAIL_COMMITTED].to_vec()),
        note: Zeroizing::new(Vec::new()),
    };
    let tail_blob = tail.seal(encoder.keys_mut()).unwrap();
    let noted = TailRecord {
        note: Zeroizing::new(TAIL_NOTE.to_vec()),
        ..tail
    };
    let noted_blob = noted.seal(encoder.keys_mut()).unwrap();

    json!({
        "description": "at-rest v1 golden vector; see proto/at-rest-v1.md. All inputs fixed, including nonces; production code draws nonces at random.",
        "kek": { "id": kek.id.as_str(), "version": kek.version, "key_hex": hex::encode(kek_key) },
        "object_id": object.to_string(),
        "object_id_hex": hex::encode(object.as_bytes()),
        "purpose": DekPurpose::ObjectData.code(),
        "dek_hex": hex::encode(dek_bytes),
        "dek_id_hex": hex::encode(dek_id),
        "wrap_nonce_hex": hex::encode(wrap_nonce),
        "wrap_aad_hex": hex::encode(wrap_aad(&ctx, &kek)),
        "dek_record_hex": hex::encode(record.encode()),
        "segment_size": SEGMENT_SIZE,
        "salt_hex": hex::encode(salt),
        "segment_key_hex": hex::encode(segment_key.as_ref()),
        "tail_key_hex": hex::encode(tail_key.as_ref()),
        "commitment_hex": hex::encode(header.commitment),
        "header_hex": hex::encode(header.encode()),
        "plaintext_hex": hex::encode(PLAINTEXT),
        "plaintext_sha256_hex": hex::encode(Sha256::digest(PLAINTEXT)),
        "segment_nonces_hex": segment_nonces.iter().map(hex::encode).collect::<Vec<_>>(),
        "segments": segments,
        "data_blob_hex": hex::encode(&data_blob),
        "tail": {
            "state": "open",
            "generation": 2,
            "full_segments": 1,
            "plaintext_len": TAIL_COMMITTED,
            "partial_hex": hex::encode(&PLAINTEXT[16..TAIL_COMMITTED]),
            "midstate_hex": hex::encode(TailRecord::midstate_of(&hasher).as_ref()),
            "nonce_hex": hex::encode(tail_nonce),
            "blob_hex": hex::encode(&tail_blob),
        },
        "tail_noted": {
            "description": "the same record with a commit note: tail version 2",
            "note_hex": hex::encode(TAIL_NOTE),
            "nonce_hex": hex::encode(noted_nonce),
            "blob_hex": hex::encode(&noted_blob),
        },
    })
}

#[test]
fn golden_vectors_match_byte_for_byte() {
    let built = build();
    if std::env::var_os("SALLYPORT_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&built).unwrap() + "\n";
        std::fs::write(VECTOR_FILE, text).unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(VECTOR_FILE).unwrap())
        .expect("proto/vectors/at-rest-v1.json is valid JSON");
    let (Value::Object(built), Value::Object(stored)) = (&built, &stored) else {
        panic!("vector file is not an object");
    };
    assert_eq!(
        built.keys().collect::<Vec<_>>(),
        stored.keys().collect::<Vec<_>>()
    );
    for (name, value) in built {
        assert_eq!(value, &stored[name], "vector field {name} differs");
    }
}

#[test]
fn golden_vector_bytes_open_to_the_plaintext() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(VECTOR_FILE).unwrap()).unwrap();
    let h = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
    let object: OpaqueId = v["object_id"].as_str().unwrap().parse().unwrap();
    let record = DekRecord::decode(&h("dek_record_hex")).unwrap();
    let kek_key: [u8; 32] = hex::decode(v["kek"]["key_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let mut versions = std::collections::BTreeMap::new();
    versions.insert(
        1,
        crate::keys::kek_set::KekVersion {
            created_unix: 0,
            material: Some(crate::keys::kek_set::KekMaterial::from_bytes(
                Zeroizing::new(kek_key),
            )),
        },
    );
    let set = crate::keys::kek_set::KekSet::new("vector".parse().unwrap(), 1, versions).unwrap();
    let ctx = WrapContext {
        object,
        dek_id: record.dek_id,
        purpose: record.purpose,
    };
    let dek = set.unwrap(&ctx, &record.wrapped).unwrap();
    assert_eq!(dek.expose().to_vec(), h("dek_hex"));

    let blob = h("data_blob_hex");
    let header = Header::decode(&blob).unwrap();
    let keys = header.unlock(object, &record.dek_id, &dek).unwrap();
    let layout =
        super::format::FinishedLayout::from_blob_len(blob.len() as u64, keys.segment_size).unwrap();
    assert_eq!(layout.plaintext_len, 40);
    let mut buf = blob[108..].to_vec();
    let mut plain = 0;
    for i in 0..=layout.full {
        let is_final = i == layout.full;
        let stored = if is_final {
            layout.final_len as usize + 28
        } else {
            44
        };
        plain += keys
            .open_segment_within(i, is_final, &mut buf, plain, i as usize * 44, stored)
            .unwrap();
    }
    assert_eq!(&buf[..plain], &h("plaintext_hex")[..]);

    let noted = TailRecord::open(
        &keys,
        &hex::decode(v["tail_noted"]["blob_hex"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(&noted.note[..], TAIL_NOTE);
    assert_eq!(&noted.partial[..], &PLAINTEXT[16..TAIL_COMMITTED]);
    let tail = TailRecord::open(&keys, &h_tail(&v)).unwrap();
    assert!(tail.note.is_empty());
    assert_eq!(tail.plaintext_len, TAIL_COMMITTED as u64);
    assert_eq!(tail.generation, 2);
    assert_eq!(&tail.partial[..], &PLAINTEXT[16..TAIL_COMMITTED]);
    let mut resumed = tail.hasher().unwrap();
    resumed.update(&PLAINTEXT[TAIL_COMMITTED..]);
    assert_eq!(
        hex::encode(resumed.finalize()),
        v["plaintext_sha256_hex"].as_str().unwrap()
    );
}

fn h_tail(v: &Value) -> Vec<u8> {
    hex::decode(v["tail"]["blob_hex"].as_str().unwrap()).unwrap()
}
