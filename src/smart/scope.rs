//! SMART system scopes: parsing the v1 (`system/Patient.read`) and v2
//! (`system/Observation.rs`) syntax, and granting the intersection of what a client asks
//! for with what its registration allows. Pure: strings in, typed decisions out.
//!
//! A scope is `system/<resource>.<permissions>` where `<resource>` is a FHIR resource type
//! or `*`, and the permissions are v1 `read`, `write` or `*`, or a v2 ordered subset of
//! `cruds`. Internally both are a set of the five v2 permissions (v1 `read` = `rs`, `write` =
//! `cud`, `*` = `cruds`); a granted scope is written back in the syntax it was asked in when
//! that syntax can say it, else in v2.
//!
//! Granting (docs/smart-backend-services.md, "Scopes"): every requested scope is intersected
//! with every allowed scope (resource `*` meets a type as that type; permissions meet as
//! sets); the union of the non-empty intersections is granted. Scopes of another context
//! (`patient/…`, `user/…`, `launch`, `openid`) are never granted to a backend client and
//! simply drop out. Nothing left is [`ScopeError::NothingGranted`].
//!
//! Not here: v2 granular scopes (`system/Observation.rs?category=…`): refused as
//! [`ScopeError::Malformed`] rather than silently widened.

use std::fmt;

/// Most scopes one request may name.
pub const MAX_SCOPES: usize = 32;
/// Longest `scope` parameter accepted.
pub const MAX_SCOPE_BYTES: usize = 1024;
/// Longest resource type name.
const MAX_RESOURCE_LEN: usize = 64;

/// Why no scope was granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The parameter is empty, too long, names too many scopes, or a `system/` scope is
    /// not well formed.
    #[error("malformed scope")]
    Malformed,
    /// Well formed, but nothing requested is within what the client may have.
    #[error("no requested scope is allowed for this client")]
    NothingGranted,
}

/// The resource a scope covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `*`: every resource type.
    Any,
    /// One FHIR resource type (`Patient`).
    Type(String),
}

/// Which syntax a scope was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syntax {
    /// SMART v1: `read`, `write`, `*`.
    V1,
    /// SMART v2: an ordered subset of `cruds`.
    V2,
}

/// Permission bits, in v2 order.
const C: u8 = 1;
const R: u8 = 2;
const U: u8 = 4;
const D: u8 = 8;
const S: u8 = 16;
const ALL: u8 = C | R | U | D | S;
const LETTERS: [(u8, char); 5] = [(C, 'c'), (R, 'r'), (U, 'u'), (D, 'd'), (S, 's')];

/// One `system/` scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    resource: Resource,
    perms: u8,
    syntax: Syntax,
}

impl Scope {
    /// Parses one scope. `Ok(None)`: a scope of another context (`patient/`, `user/`,
    /// `launch`, …), which a backend client is never granted.
    pub fn parse(s: &str) -> Result<Option<Scope>, ScopeError> {
        let Some(rest) = s.strip_prefix("system/") else {
            return if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()) || s.contains('"') {
                Err(ScopeError::Malformed)
            } else {
                Ok(None)
            };
        };
        let (resource, perms) = rest.split_once('.').ok_or(ScopeError::Malformed)?;
        let resource = match resource {
            "*" => Resource::Any,
            r if is_resource_type(r) => Resource::Type(r.to_owned()),
            _ => return Err(ScopeError::Malformed),
        };
        let (perms, syntax) = match perms {
            "read" => (R | S, Syntax::V1),
            "write" => (C | U | D, Syntax::V1),
            "*" => (ALL, Syntax::V1),
            v2 => (parse_v2(v2)?, Syntax::V2),
        };
        Ok(Some(Scope {
            resource,
            perms,
            syntax,
        }))
    }

    /// The resource.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Whether the scope lets a client read (`r`) and search (`s`) `resource_type`: what a
    /// Bulk Data export of that type needs.
    pub fn allows_read_of(&self, resource_type: &str) -> bool {
        let covers = match &self.resource {
            Resource::Any => true,
            Resource::Type(t) => t == resource_type,
        };
        covers && self.perms & (R | S) == R | S
    }

    /// What `self` (requested) and `allowed` have in common, in `self`'s syntax when it
    /// can say it.
    pub fn intersect(&self, allowed: &Scope) -> Option<Scope> {
        let resource = match (&self.resource, &allowed.resource) {
            (Resource::Any, r) | (r, Resource::Any) => r.clone(),
            (Resource::Type(a), Resource::Type(b)) if a == b => Resource::Type(a.clone()),
            _ => return None,
        };
        let perms = self.perms & allowed.perms;
        if perms == 0 {
            return None;
        }
        let v1_says_it = matches!(perms, p if p == R | S || p == C | U | D || p == ALL);
        let syntax = match self.syntax {
            Syntax::V1 if v1_says_it => Syntax::V1,
            _ => Syntax::V2,
        };
        Some(Scope {
            resource,
            perms,
            syntax,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("system/")?;
        match &self.resource {
            Resource::Any => f.write_str("*")?,
            Resource::Type(t) => f.write_str(t)?,
        }
        f.write_str(".")?;
        match (self.syntax, self.perms) {
            (Syntax::V1, p) if p == R | S => f.write_str("read"),
            (Syntax::V1, p) if p == C | U | D => f.write_str("write"),
            (Syntax::V1, ALL) => f.write_str("*"),
            _ => {
                for (bit, letter) in LETTERS {
                    if self.perms & bit != 0 {
                        write!(f, "{letter}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// The scopes granted for one request, in request order, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted(Vec<Scope>);

impl Granted {
    /// The granted scopes.
    pub fn scopes(&self) -> &[Scope] {
        &self.0
    }
}

impl fmt::Display for Granted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

/// Parses a space-separated list of scopes (an access token's `scope`, a configured
/// list), keeping only `system/` scopes.
pub fn parse_list(s: &str) -> Result<Vec<Scope>, ScopeError> {
    if s.is_empty() || s.len() > MAX_SCOPE_BYTES {
        return Err(ScopeError::Malformed);
    }
    let mut out = Vec::new();
    for (i, token) in s.split(' ').enumerate() {
        if i >= MAX_SCOPES {
            return Err(ScopeError::Malformed);
        }
        if let Some(scope) = Scope::parse(token)? {
            out.push(scope);
        }
    }
    Ok(out)
}

/// Grants the intersection of the requested scope parameter with `allowed`.
pub fn grant(requested: &str, allowed: &[Scope]) -> Result<Granted, ScopeError> {
    let requested = parse_list(requested)?;
    let mut out: Vec<Scope> = Vec::new();
    for want in &requested {
        for have in allowed {
            if let Some(g) = want.intersect(have)
                && !out.contains(&g)
            {
                out.push(g);
            }
        }
    }
    if out.is_empty() {
        return Err(ScopeError::NothingGranted);
    }
    Ok(Granted(out))
}

/// A FHIR resource type name: an ASCII capital, then ASCII letters.
fn is_resource_type(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_RESOURCE_LEN
        && b[0].is_ascii_uppercase()
        && b.iter().all(u8::is_ascii_alphabetic)
}

/// v2 permissions: a non-empty subset of `cruds`, in that order, no repeats.
fn parse_v2(s: &str) -> Result<u8, ScopeError> {
    let mut perms = 0u8;
    let mut next = 0usize;
    for ch in s.chars() {
        let Some(pos) = LETTERS[next..].iter().position(|(_, l)| *l == ch) else {
            return Err(ScopeError::Malformed);
        };
        perms |= LETTERS[next + pos].0;
        next += pos + 1;
    }
    if perms == 0 {
        return Err(ScopeError::Malformed);
    }
    Ok(perms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Scope {
        Scope::parse(s).unwrap().unwrap()
    }

    #[test]
    fn v1_and_v2_parse_and_print_back() {
        for s in [
            "system/*.read",
            "system/Patient.read",
            "system/Observation.write",
            "system/*.*",
            "system/*.rs",
            "system/Patient.cruds",
            "system/Group.r",
        ] {
            assert_eq!(one(s).to_string(), s);
        }
        for bad in [
            "system/",
            "system/*",
            "system/patient.read",
            "system/Patient.sr",
            "system/Patient.rr",
            "system/Patient.",
            "system/Patient.rs?category=x",
            "system/Pat-ient.read",
            "",
        ] {
            assert_eq!(Scope::parse(bad), Err(ScopeError::Malformed), "{bad:?}");
        }
        assert_eq!(Scope::parse("patient/*.read"), Ok(None));
        assert_eq!(Scope::parse("launch"), Ok(None));
    }

    #[test]
    fn grants_the_intersection() {
        let allowed = vec![one("system/Patient.read"), one("system/Observation.rs")];
        let g = grant("system/*.read", &allowed).unwrap();
        assert_eq!(g.to_string(), "system/Patient.read system/Observation.read");
        let g = grant("system/*.rs", &allowed).unwrap();
        assert_eq!(g.to_string(), "system/Patient.rs system/Observation.rs");
        // v1 `*` against read-only: the read part, still in v1.
        let g = grant("system/Patient.*", &allowed).unwrap();
        assert_eq!(g.to_string(), "system/Patient.read");
        // Only `r` of `rs`: v1 cannot say it, so v2.
        let g = grant("system/Observation.r launch", &allowed).unwrap();
        assert_eq!(g.to_string(), "system/Observation.r");
        assert_eq!(
            grant("system/Encounter.read", &allowed),
            Err(ScopeError::NothingGranted)
        );
        assert_eq!(
            grant("system/Patient.write", &allowed),
            Err(ScopeError::NothingGranted)
        );
        assert_eq!(
            grant("patient/*.read", &allowed),
            Err(ScopeError::NothingGranted)
        );
        assert_eq!(grant("", &allowed), Err(ScopeError::Malformed));
        assert_eq!(
            grant("system/*.read  system/*.rs", &allowed),
            Err(ScopeError::Malformed),
            "two spaces make an empty scope"
        );
        let many = vec!["system/*.read"; MAX_SCOPES + 1].join(" ");
        assert_eq!(grant(&many, &allowed), Err(ScopeError::Malformed));
        // Duplicates collapse.
        let g = grant("system/Patient.read system/Patient.read", &allowed).unwrap();
        assert_eq!(g.scopes().len(), 1);
    }

    #[test]
    fn read_access_for_bulk() {
        assert!(one("system/*.read").allows_read_of("Patient"));
        assert!(one("system/Patient.rs").allows_read_of("Patient"));
        assert!(!one("system/Patient.r").allows_read_of("Patient"));
        assert!(!one("system/Patient.read").allows_read_of("Observation"));
    }

    #[test]
    fn every_prefix_parses_without_panicking() {
        let s = "system/Observation.cruds system/*.read patient/*.rs";
        for i in 0..=s.len() {
            let _ = parse_list(&s[..i]);
        }
    }
}
