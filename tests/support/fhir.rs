//! Synthetic FHIR R4 Bulk Data for the batch tests: a deterministic (seeded) generator of
//! `Patient`, `Encounter` and `Observation` NDJSON, a [`Batch`] of member files in a temp
//! directory, its manifest (`sallyport.manifest/1`) and provenance record
//! (`sallyport.provenance/1`), and the mutators the batch scenarios need.
//!
//! Nobody in here is real: every resource carries the meta tag
//! `urn:sallyport:test#synthetic`, identifiers use the synthetic system [`ID_SYSTEM`]
//! (`SYN-…` values), and names come from small fixed lists of invented words. The same seed
//! gives the same bytes, so a failing scenario can be replayed.
//!
//! Not here: uploading (the tests drive tuspy), the HTTP API.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::data::sha256_hex;

/// The identifier system of every synthetic patient (an OID arc under a test root).
pub const ID_SYSTEM: &str = "urn:oid:2.16.840.1.113883.3.7204.99.1";
/// The media type of every NDJSON member.
pub const FHIR_NDJSON: &str = "application/fhir+ndjson";

const FAMILIES: &[&str] = &[
    "Testwood",
    "Brightfield",
    "Synthby",
    "Mockridge",
    "Placeholm",
    "Sampleton",
    "Fakewell",
    "Dummond",
    "Specimenn",
    "Fictor",
];
const GIVEN: &[&str] = &[
    "Ada", "Birk", "Cato", "Dalia", "Eero", "Fenna", "Gus", "Hedda", "Ilo", "Juno", "Kai", "Lumi",
];
const GENDERS: &[&str] = &["female", "male", "other", "unknown"];
/// (code, display) of HL7 v3 ActCode encounter classes.
const CLASSES: &[(&str, &str)] = &[
    ("AMB", "ambulatory"),
    ("EMER", "emergency"),
    ("IMP", "inpatient encounter"),
    ("VR", "virtual"),
];
const ENCOUNTER_STATUS: &[&str] = &["finished", "finished", "finished", "in-progress"];
/// (category, LOINC code, display, UCUM unit, low, high): the value range in tenths.
const OBSERVATIONS: &[(&str, &str, &str, &str, u64, u64)] = &[
    (
        "laboratory",
        "718-7",
        "Hemoglobin [Mass/volume] in Blood",
        "g/dL",
        90,
        180,
    ),
    (
        "laboratory",
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        "mg/dL",
        600,
        2000,
    ),
    (
        "laboratory",
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        "mg/dL",
        4,
        20,
    ),
    ("vital-signs", "8867-4", "Heart rate", "/min", 450, 1300),
    (
        "vital-signs",
        "8480-6",
        "Systolic blood pressure",
        "mm[Hg]",
        900,
        1800,
    ),
    ("vital-signs", "8310-5", "Body temperature", "Cel", 355, 395),
    ("vital-signs", "29463-7", "Body weight", "kg", 30, 1300),
];
const OBS_STATUS: &[&str] = &["final", "final", "final", "amended"];

/// A small seeded PRNG (xorshift64*): the same seed, the same records.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, list: &'a [T]) -> &'a T {
        &list[self.below(list.len() as u64) as usize]
    }
}

const META: &str = r#""meta":{"tag":[{"system":"urn:sallyport:test","code":"synthetic"}]}"#;

/// `n` synthetic patients, `pat-000001` …, one per line.
pub fn patients(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0x5041_5449);
    let mut out = String::with_capacity(n * 330);
    for i in 1..=n {
        let family = rng.pick(FAMILIES);
        let given = rng.pick(GIVEN);
        let gender = rng.pick(GENDERS);
        let (y, m, d) = (1930 + rng.below(90), 1 + rng.below(12), 1 + rng.below(28));
        writeln!(
            out,
            r#"{{"resourceType":"Patient","id":"pat-{i:06}",{META},"identifier":[{{"use":"usual","system":"{ID_SYSTEM}","value":"SYN-{i:06}"}}],"active":true,"name":[{{"use":"official","family":"{family}","given":["{given}"]}}],"gender":"{gender}","birthDate":"{y}-{m:02}-{d:02}"}}"#
        )
        .unwrap();
    }
    out.into_bytes()
}

/// `n` synthetic encounters of patients `1..=patients`, one per line.
pub fn encounters(n: usize, patients: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0x454e_4355);
    let mut out = String::with_capacity(n * 420);
    for i in 1..=n {
        let patient = 1 + rng.below(patients as u64);
        let (code, display) = rng.pick(CLASSES);
        let status = rng.pick(ENCOUNTER_STATUS);
        let (m, d, h) = (1 + rng.below(11), 1 + rng.below(28), 7 + rng.below(10));
        let minutes = 10 + rng.below(50);
        let end = if *status == "finished" {
            format!(r#","end":"2026-{m:02}-{d:02}T{h:02}:{minutes:02}:00Z""#)
        } else {
            String::new()
        };
        writeln!(
            out,
            r#"{{"resourceType":"Encounter","id":"enc-{i:06}",{META},"status":"{status}","class":{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"{code}","display":"{display}"}},"subject":{{"reference":"Patient/pat-{patient:06}"}},"period":{{"start":"2026-{m:02}-{d:02}T{h:02}:00:00Z"{end}}}}}"#
        )
        .unwrap();
    }
    out.into_bytes()
}

/// `n` synthetic observations (labs and vitals with LOINC codes and UCUM units) of
/// patients `1..=patients`, one per line.
pub fn observations(n: usize, patients: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0x4f42_5345);
    let mut out = String::with_capacity(n * 560);
    for i in 1..=n {
        let patient = 1 + rng.below(patients as u64);
        let (category, code, display, unit, low, high) = rng.pick(OBSERVATIONS);
        let tenths = low + rng.below(high - low + 1);
        let status = rng.pick(OBS_STATUS);
        let (m, d, h, min) = (
            1 + rng.below(11),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
        );
        writeln!(
            out,
            r#"{{"resourceType":"Observation","id":"obs-{i:06}",{META},"status":"{status}","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"{category}"}}]}}],"code":{{"coding":[{{"system":"http://loinc.org","code":"{code}","display":"{display}"}}]}},"subject":{{"reference":"Patient/pat-{patient:06}"}},"effectiveDateTime":"2026-{m:02}-{d:02}T{h:02}:{min:02}:00Z","valueQuantity":{{"value":{}.{},"unit":"{unit}","system":"http://unitsofmeasure.org","code":"{unit}"}}}}"#,
            tenths / 10,
            tenths % 10
        )
        .unwrap();
    }
    out.into_bytes()
}

/// One member file of a batch.
#[derive(Debug, Clone)]
pub struct Member {
    /// The logical name (`Patient.ndjson`), also the file name in the batch directory.
    pub name: String,
    /// The declared FHIR resource type.
    pub resource_type: String,
    /// The file's current bytes.
    pub bytes: Vec<u8>,
}

impl Member {
    /// The number of records (non-blank lines) in the current bytes.
    pub fn records(&self) -> u64 {
        self.bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64
    }

    /// What the manifest would say about the current bytes.
    pub fn listing(&self) -> Listing {
        Listing {
            name: self.name.clone(),
            size: self.bytes.len() as u64,
            sha256: sha256_hex(&self.bytes),
            resource_type: self.resource_type.clone(),
            records: self.records(),
        }
    }
}

/// One member as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub resource_type: String,
    pub records: u64,
}

/// A manifest: its listings and whether it states the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub members: Vec<Listing>,
    pub totals: bool,
}

impl Manifest {
    /// The listing of `name`.
    pub fn member_mut(&mut self, name: &str) -> &mut Listing {
        self.members
            .iter_mut()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} is not listed"))
    }

    /// The sum of the listed sizes.
    pub fn total_bytes(&self) -> u64 {
        self.members.iter().map(|m| m.size).sum()
    }

    /// The manifest document: indented JSON written by hand (keys in the format's order),
    /// so the bytes the gateway stores and serves back are recognisably these, not a
    /// re-serialisation. No trailing newline: a document is the bytes between its braces.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\n  \"version\": \"sallyport.manifest/1\",\n  \"members\": [");
        for (i, m) in self.members.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(
                out,
                "{sep}\n    {{\n      \"name\": \"{}\",\n      \"size\": {},\n      \"sha256\": \"{}\",\n      \"media_type\": \"{FHIR_NDJSON}\",\n      \"ndjson\": {{ \"resource_type\": \"{}\", \"records\": {} }}\n    }}",
                m.name, m.size, m.sha256, m.resource_type, m.records
            )
            .unwrap();
        }
        out.push_str("\n  ]");
        if self.totals {
            write!(
                out,
                ",\n  \"total_members\": {},\n  \"total_bytes\": {}",
                self.members.len(),
                self.total_bytes()
            )
            .unwrap();
        }
        out.push_str("\n}");
        out
    }
}

/// The provenance record: the shape of `proto/vectors/provenance-v1/valid-fhir-bulk-export.json`,
/// with a synthetic source system and job id.
pub fn provenance_json(job: &str) -> String {
    format!(
        r#"{{
  "version": "sallyport.provenance/1",
  "source_system": "urn:oid:2.16.840.1.113883.3.7204.99",
  "job_id": "{job}",
  "exported_at": "2026-11-30T23:15:02.481Z",
  "requester": "smart-client:synthetic-lab-sync",
  "scopes": [
    "system/Patient.rs",
    "system/Encounter.rs",
    "system/Observation.rs?category=laboratory"
  ],
  "purpose_of_use": {{
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "code": "TREAT"
  }},
  "filters": [
    "_type=Patient,Encounter,Observation",
    "_typeFilter=Observation?category=laboratory",
    "_since=2026-11-01T00:00:00Z"
  ],
  "schema_version": "FHIR R4 4.0.1",
  "transformations": [
    "identifiers re-keyed to the partner's MRN namespace",
    "timestamps normalised to UTC"
  ]
}}"#
    )
}

/// The body of `POST /v1/batches`, by byte concatenation, so each document arrives exactly
/// as given (`{"manifest": <bytes>, "provenance": <bytes>}`).
pub fn open_body(manifest: &[u8], provenance: Option<&[u8]>) -> Vec<u8> {
    let mut body = b"{\"manifest\": ".to_vec();
    body.extend_from_slice(manifest);
    if let Some(p) = provenance {
        body.extend_from_slice(b",\n \"provenance\": ");
        body.extend_from_slice(p);
    }
    body.extend_from_slice(b"}");
    body
}

/// A batch of NDJSON member files in a temp directory (each written as its logical name).
#[derive(Debug)]
pub struct Batch {
    pub members: Vec<Member>,
    dir: tempfile::TempDir,
}

impl Batch {
    /// `Patient.ndjson`, `Encounter.ndjson` and `Observation.ndjson` with the given record
    /// counts, generated from `seed`, written into a fresh temp directory under `parent`.
    pub fn synthetic(parent: &Path, seed: u64, counts: [usize; 3]) -> Batch {
        let [p, e, o] = counts;
        let members = vec![
            member("Patient", patients(p, seed)),
            member("Encounter", encounters(e, p, seed)),
            member("Observation", observations(o, p, seed)),
        ];
        let batch = Batch {
            members,
            dir: tempfile::tempdir_in(parent).unwrap(),
        };
        for m in &batch.members {
            batch.write(m);
        }
        batch
    }

    /// The manifest of the current bytes (totals stated).
    pub fn manifest(&self) -> Manifest {
        Manifest {
            members: self.members.iter().map(Member::listing).collect(),
            totals: true,
        }
    }

    /// The file of member `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn member(&self, name: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no member {name}"))
    }

    // === mutators: each changes the files, never a manifest already taken ===

    /// Removes record `index` (0-based line) of `name`. Returns the removed line's length
    /// with its newline.
    pub fn drop_record(&mut self, name: &str, index: usize) -> usize {
        self.edit_lines(name, |lines| lines.remove(index).len() + 1)
    }

    /// Rewrites line `index` (0-based) of `name` so its `resourceType` is `other`; the line
    /// stays one well-formed JSON object, so only the resource type check can fail.
    pub fn wrong_resource_type(&mut self, name: &str, index: usize, other: &str) {
        let declared = self.member(name).resource_type.clone();
        self.edit_lines(name, |lines| {
            let from = format!(r#""resourceType":"{declared}""#);
            let to = format!(r#""resourceType":"{other}""#);
            let line = String::from_utf8(lines[index].clone()).unwrap();
            assert!(line.contains(&from));
            lines[index] = line.replacen(&from, &to, 1).into_bytes();
        });
    }

    /// Takes member `name` out of the batch (its file is deleted): a manifest taken before
    /// still lists it, so it is never uploaded.
    pub fn omit(&mut self, name: &str) -> Member {
        let i = self.members.iter().position(|m| m.name == name).unwrap();
        std::fs::remove_file(self.path(name)).unwrap();
        self.members.remove(i)
    }

    /// Adds a member file a manifest taken before does not list.
    pub fn add_extra(&mut self, name: &str, resource_type: &str, bytes: Vec<u8>) {
        let m = Member {
            name: name.to_owned(),
            resource_type: resource_type.to_owned(),
            bytes,
        };
        self.write(&m);
        self.members.push(m);
    }

    fn edit_lines<T>(&mut self, name: &str, f: impl FnOnce(&mut Vec<Vec<u8>>) -> T) -> T {
        let i = self.members.iter().position(|m| m.name == name).unwrap();
        let member = &mut self.members[i];
        let mut lines: Vec<Vec<u8>> = member
            .bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        let out = f(&mut lines);
        member.bytes = lines
            .into_iter()
            .flat_map(|mut l| {
                l.push(b'\n');
                l
            })
            .collect();
        let m = member.clone();
        self.write(&m);
        out
    }

    fn write(&self, m: &Member) {
        std::fs::write(self.path(&m.name), &m.bytes).unwrap();
    }
}

fn member(resource_type: &str, bytes: Vec<u8>) -> Member {
    Member {
        name: format!("{resource_type}.ndjson"),
        resource_type: resource_type.to_owned(),
        bytes,
    }
}
