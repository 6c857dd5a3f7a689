//! The verdict's property: random manifests, observed facts derived from them with random
//! perturbations (or none) → `Released` exactly when nothing was perturbed, and every
//! perturbation is named by at least one finding about that member (and no finding names a
//! member that was left alone).

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone, Copy)]
enum Perturbation {
    Drop,
    Incomplete,
    Size(u64),
    UploadDigest(u8),
    StreamDigest(u8),
    UploadDigestGone,
    StreamDigestGone,
    Duplicate,
    // NDJSON only; on other members these become `UploadDigest`.
    Records(u64),
    Lines(LineFault, u64),
    Truncated,
    Unchecked,
    CheckedAsOther,
}

fn perturbation() -> impl Strategy<Value = Perturbation> {
    let kind = prop::sample::select(LineFault::ALL.to_vec());
    prop_oneof![
        Just(Perturbation::Drop),
        Just(Perturbation::Incomplete),
        (1u64..1000).prop_map(Perturbation::Size),
        (1u8..=255).prop_map(Perturbation::UploadDigest),
        (1u8..=255).prop_map(Perturbation::StreamDigest),
        Just(Perturbation::UploadDigestGone),
        Just(Perturbation::StreamDigestGone),
        Just(Perturbation::Duplicate),
        (1u64..1000).prop_map(Perturbation::Records),
        (kind, 1u64..50).prop_map(|(k, n)| Perturbation::Lines(k, n)),
        Just(Perturbation::Truncated),
        Just(Perturbation::Unchecked),
        Just(Perturbation::CheckedAsOther),
    ]
}

fn expected_member() -> impl Strategy<Value = (u64, [u8; 32], Option<(String, u64)>)> {
    let rt =
        prop::sample::select(vec!["Patient", "Encounter", "Observation"]).prop_map(String::from);
    (
        0u64..1 << 40,
        any::<[u8; 32]>(),
        prop::option::of((rt, 0u64..1_000_000)),
    )
}

/// A manifest with one optional perturbation per member, a number of unlisted extras, and
/// whether the totals are stated.
fn case() -> impl Strategy<Value = (Expected, Vec<Option<Perturbation>>, usize)> {
    // No `_` in listed names, so the extras' names (which have one) never collide.
    prop::collection::btree_set("[A-Za-z0-9.-]{1,12}", 1..8)
        .prop_flat_map(|names| {
            let n = names.len();
            (
                Just(names),
                prop::collection::vec(expected_member(), n),
                prop::collection::vec(prop::option::weighted(0.25, perturbation()), n),
                prop_oneof![3 => Just(0usize), 1 => 1usize..3],
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(
            |(names, facts, perturbations, extras, count_stated, bytes_stated)| {
                let members: Vec<ExpectedMember> = names
                    .into_iter()
                    .zip(facts)
                    .map(|(name, (size, sha256, ndjson))| ExpectedMember {
                        name,
                        size,
                        sha256,
                        ndjson: ndjson.map(|(resource_type, records)| ExpectedNdjson {
                            resource_type,
                            records,
                        }),
                    })
                    .collect();
                let expected = Expected {
                    total_members: count_stated.then_some(members.len() as u64),
                    total_bytes: bytes_stated.then(|| members.iter().map(|m| m.size).sum()),
                    members,
                };
                (expected, perturbations, extras)
            },
        )
}

/// The observed facts: each member as listed, then perturbed; extras appended.
fn observe(expected: &Expected, perturbations: &[Option<Perturbation>], extras: usize) -> Observed {
    let mut members = Vec::new();
    for (m, p) in expected.members.iter().zip(perturbations) {
        let mut o = ObservedMember {
            unreadable: false,
            name: m.name.clone(),
            complete: true,
            size: m.size,
            upload_sha256: Some(m.sha256),
            stream_sha256: Some(m.sha256),
            ndjson: m.ndjson.as_ref().map(|n| NdjsonReport {
                resource_type: n.resource_type.clone(),
                records: n.records,
                bytes: m.size,
                lines: n.records,
                ..NdjsonReport::default()
            }),
        };
        let p = match (p, o.ndjson.is_some()) {
            (
                Some(
                    Perturbation::Records(_)
                    | Perturbation::Lines(..)
                    | Perturbation::Truncated
                    | Perturbation::Unchecked
                    | Perturbation::CheckedAsOther,
                ),
                false,
            ) => Some(Perturbation::UploadDigest(1)),
            (p, _) => *p,
        };
        match p {
            None => {}
            Some(Perturbation::Drop) => continue,
            Some(Perturbation::Incomplete) => {
                o.complete = false;
                o.size /= 2;
            }
            Some(Perturbation::Size(d)) => o.size = o.size.wrapping_add(d),
            Some(Perturbation::UploadDigest(x)) => o.upload_sha256 = Some(flip(m.sha256, x)),
            Some(Perturbation::StreamDigest(x)) => o.stream_sha256 = Some(flip(m.sha256, x)),
            Some(Perturbation::UploadDigestGone) => o.upload_sha256 = None,
            Some(Perturbation::StreamDigestGone) => o.stream_sha256 = None,
            Some(Perturbation::Duplicate) => members.push(o.clone()),
            Some(Perturbation::Records(d)) => {
                if let Some(r) = o.ndjson.as_mut() {
                    r.records = r.records.wrapping_add(d);
                }
            }
            Some(Perturbation::Lines(kind, count)) => {
                if let Some(r) = o.ndjson.as_mut() {
                    let tally = match kind {
                        LineFault::TooLong => &mut r.too_long,
                        LineFault::Blank => &mut r.blank,
                        LineFault::InvalidUtf8 => &mut r.invalid_utf8,
                        LineFault::NotJsonObject => &mut r.not_json_object,
                        LineFault::WrongResourceType => &mut r.wrong_resource_type,
                    };
                    *tally = FaultLines {
                        count,
                        first: (1..=count.min(5)).collect(),
                    };
                }
            }
            Some(Perturbation::Truncated) => {
                if let Some(r) = o.ndjson.as_mut() {
                    r.truncated_last_line = true;
                }
            }
            Some(Perturbation::Unchecked) => o.ndjson = None,
            Some(Perturbation::CheckedAsOther) => {
                if let Some(r) = o.ndjson.as_mut() {
                    r.resource_type.push('X');
                }
            }
        }
        members.push(o);
    }
    for i in 0..extras {
        members.push(ObservedMember {
            unreadable: false,
            name: format!("extra_{i}.txt"),
            complete: true,
            size: 1,
            upload_sha256: Some([0; 32]),
            stream_sha256: Some([0; 32]),
            ndjson: None,
        });
    }
    Observed { members }
}

fn flip(mut digest: [u8; 32], x: u8) -> [u8; 32] {
    digest[usize::from(x) % 32] ^= x;
    digest
}

proptest! {
    #[test]
    fn released_exactly_when_nothing_was_perturbed(
        (expected, perturbations, extras) in case(),
        order in any::<prop::sample::Index>(),
    ) {
        let observed = observe(&expected, &perturbations, extras);
        let v = verdict(&expected, &observed);

        let touched: BTreeSet<String> = expected
            .members
            .iter()
            .zip(&perturbations)
            .filter(|(_, p)| p.is_some())
            .map(|(m, _)| m.name.clone())
            .chain((0..extras).map(|i| format!("extra_{i}.txt")))
            .collect();
        prop_assert_eq!(matches!(v, Verdict::Released), touched.is_empty());
        prop_assert_eq!(matches!(v, Verdict::Released), v.findings().is_empty());

        // Every perturbed member is named; nothing else is.
        let named: BTreeSet<String> = v.findings().iter().filter_map(|f| f.member()).map(String::from).collect();
        prop_assert_eq!(&named, &touched);
        // Batch-level findings only when the manifest states totals.
        for f in v.findings().iter().filter(|f| f.member().is_none()) {
            let stated = match f {
                Finding::TotalMembersMismatch { .. } => expected.total_members.is_some(),
                _ => expected.total_bytes.is_some(),
            };
            prop_assert!(stated, "{f}");
        }
        // Members' findings are grouped in manifest order, then extras, then the batch.
        let rank = |f: &Finding| match f.member() {
            Some(n) => expected.members.iter().position(|m| m.name == n).unwrap_or(expected.members.len()),
            None => expected.members.len() + 1,
        };
        let ranks: Vec<usize> = v.findings().iter().map(rank).collect();
        prop_assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");

        // The order uploads arrive in changes nothing (duplicates here are exact copies).
        let mut rotated = observed.clone();
        if !rotated.members.is_empty() {
            let k = order.index(rotated.members.len());
            rotated.members.rotate_left(k);
            rotated.members.reverse();
        }
        prop_assert_eq!(verdict(&expected, &rotated), v);
    }
}
