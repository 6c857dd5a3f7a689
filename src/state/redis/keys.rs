//! Redis key names (the layout is described in the parent module's docs). Pure, no I/O.
//!
//! Every key is `prefix ‖ tag ‖ parts`. Namespaces, index names and log names are
//! `[a-z0-9_]` (checked by `state::limits`), so they never contain the `:` separator, and
//! the only free-form part of a key (an id, an indexed value, a lease name) is always its
//! last part. A key therefore splits back into its parts in exactly one way.

/// The key builder for one store (one prefix).
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.as_bytes().to_vec(),
        }
    }

    fn key(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = self.prefix.clone();
        for part in parts {
            out.extend_from_slice(part);
        }
        out
    }

    /// A record's hash: `P r:<ns>:<id>`.
    pub(super) fn record(&self, ns: &str, id: &str) -> Vec<u8> {
        self.key(&[b"r:", ns.as_bytes(), b":", id.as_bytes()])
    }

    /// What every record key of `ns` starts with (the id follows): `P r:<ns>:`.
    pub(super) fn record_prefix(&self, ns: &str) -> Vec<u8> {
        self.key(&[b"r:", ns.as_bytes(), b":"])
    }

    /// The sorted set of a namespace's record ids: `P n:<ns>`.
    pub(super) fn namespace(&self, ns: &str) -> Vec<u8> {
        self.key(&[b"n:", ns.as_bytes()])
    }

    /// The sorted set of ids listed under one index value: `P x:<ns>:<index>:<value>`.
    pub(super) fn index(&self, ns: &str, index: &str, value: &str) -> Vec<u8> {
        self.key(&[
            b"x:",
            ns.as_bytes(),
            b":",
            index.as_bytes(),
            b":",
            value.as_bytes(),
        ])
    }

    /// A counter: `P c:<ns>:<id>`.
    pub(super) fn counter(&self, ns: &str, id: &str) -> Vec<u8> {
        self.key(&[b"c:", ns.as_bytes(), b":", id.as_bytes()])
    }

    /// A lease's hash: `P l:<name>`.
    pub(super) fn lease(&self, name: &str) -> Vec<u8> {
        self.key(&[b"l:", name.as_bytes()])
    }

    /// The store-wide lease fencing counter: `P lease_fence` (no `:` after the first
    /// character, so it is distinct from every tagged key).
    pub(super) fn lease_fence(&self) -> Vec<u8> {
        self.key(&[b"lease_fence"])
    }

    /// An instance's alive key, a string `<incarnation>:<beat>` with a short TTL:
    /// `P a:<instance id>`.
    pub(super) fn alive(&self, instance: &str) -> Vec<u8> {
        self.key(&[b"a:", instance.as_bytes()])
    }

    /// What every alive key starts with (the instance id follows): `P a:`.
    pub(super) fn alive_prefix(&self) -> Vec<u8> {
        self.key(&[b"a:"])
    }

    /// An instance's incarnation counter: `P e:<instance id>`.
    pub(super) fn epoch(&self, instance: &str) -> Vec<u8> {
        self.key(&[b"e:", instance.as_bytes()])
    }

    /// A log's head sequence number: `P g:<log>:h`.
    pub(super) fn log_head(&self, log: &str) -> Vec<u8> {
        self.key(&[b"g:", log.as_bytes(), b":h"])
    }

    /// A log's entries, a hash from decimal sequence number to bytes: `P g:<log>:e`.
    pub(super) fn log_entries(&self, log: &str) -> Vec<u8> {
        self.key(&[b"g:", log.as_bytes(), b":e"])
    }
}

/// The record-hash field that marks membership of the index sorted set `index_key`.
pub(super) fn membership_field(index_key: &[u8]) -> Vec<u8> {
    let mut out = b"x:".to_vec();
    out.extend_from_slice(index_key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout() {
        let k = Keys::new("sp:");
        assert_eq!(k.record("upload", "abc"), b"sp:r:upload:abc");
        assert_eq!(k.record_prefix("upload"), b"sp:r:upload:");
        assert!(
            k.record("upload", "abc")
                .starts_with(&k.record_prefix("upload"))
        );
        assert_eq!(k.namespace("upload"), b"sp:n:upload");
        assert_eq!(k.index("grant", "owner", "c:7"), b"sp:x:grant:owner:c:7");
        assert_eq!(k.counter("dl", "g1"), b"sp:c:dl:g1");
        assert_eq!(k.lease("upload/1"), b"sp:l:upload/1");
        assert_eq!(k.lease_fence(), b"sp:lease_fence");
        assert_eq!(k.log_head("audit"), b"sp:g:audit:h");
        assert_eq!(k.alive("gw-1"), b"sp:a:gw-1");
        assert!(k.alive("gw-1").starts_with(&k.alive_prefix()));
        assert_eq!(k.epoch("gw-1"), b"sp:e:gw-1");
        assert_eq!(k.log_entries("audit"), b"sp:g:audit:e");
        assert_eq!(membership_field(b"sp:x:a:b:c"), b"x:sp:x:a:b:c");
    }

    #[test]
    fn the_fence_key_is_not_a_lease_key() {
        let k = Keys::new("p");
        // A lease named "ease_fence" would be "pl:ease_fence", not "plese_fence".
        assert_ne!(k.lease("ease_fence"), k.lease_fence());
    }

    proptest! {
        // Namespaces and index names never contain ':', so distinct triples give distinct keys.
        #[test]
        fn index_keys_never_collide(
            a in ("[a-z0-9_]{1,6}", "[a-z0-9_]{1,6}", "\\PC{0,8}"),
            b in ("[a-z0-9_]{1,6}", "[a-z0-9_]{1,6}", "\\PC{0,8}"),
        ) {
            prop_assume!(a != b);
            let k = Keys::new("p:");
            prop_assert_ne!(k.index(&a.0, &a.1, &a.2), k.index(&b.0, &b.1, &b.2));
        }

        #[test]
        fn record_keys_never_collide(
            a in ("[a-z0-9_]{1,6}", "\\PC{0,8}"),
            b in ("[a-z0-9_]{1,6}", "\\PC{0,8}"),
        ) {
            prop_assume!(a != b);
            let k = Keys::new("p:");
            prop_assert_ne!(k.record(&a.0, &a.1), k.record(&b.0, &b.1));
        }
    }
}
