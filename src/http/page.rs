//! The clinic upload page: the static files a browser loads at `/invite` (the invitation
//! URL is `/invite#<token>`), embedded in the binary so the gateway serves them with
//! nothing else installed.
//!
//! The files live in `assets/invite/` (see its README for the vendored libraries, their
//! versions and digests). This module only knows them by name: the router turns
//! `/invite/assets/{name}` into one of [`ASSETS`] or a 404, so a handler never sees a raw
//! name, and nothing outside the table can be served.
//!
//! Every answer carries the page's own Content-Security-Policy ([`PAGE_CSP`]): scripts,
//! styles, workers and requests from this origin only, no inline code, no framing. The
//! token stays in the URL fragment and in the page's memory: it never reaches the server
//! in a page request, nor a `Referer` (`no-referrer`).
//!
//! Not here: serving them (`handlers::page`), and the API the page calls (invitations,
//! tus uploads), which is the gateway's ordinary API.

/// The page's Content-Security-Policy. `worker-src` is not named: it falls back to
/// `script-src 'self'`, which the hashing worker (a module from this origin) needs.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    /// The name under `/invite/assets/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The HTML document served at `/invite`.
pub static INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../../assets/invite/index.html"),
};

/// Everything served under `/invite/assets/`.
pub static ASSETS: &[Asset] = &[
    Asset {
        name: "invite.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/invite/invite.js"),
    },
    Asset {
        name: "invite.css",
        content_type: CSS,
        bytes: include_bytes!("../../assets/invite/invite.css"),
    },
    Asset {
        name: "hash-worker.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/invite/hash-worker.js"),
    },
    // Vendored: tus-js-client's browser bundle (defines the global `tus`).
    Asset {
        name: "tus.min.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/invite/tus.min.js"),
    },
    // Vendored: @noble/hashes' SHA-2 and the modules it imports, under their own names
    // (they import each other as `./utils.js` and so on).
    Asset {
        name: "sha2.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/invite/sha2.js"),
    },
    Asset {
        name: "_md.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/invite/_md.js"),
    },
    Asset {
        name: "_u64.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/invite/_u64.js"),
    },
    Asset {
        name: "utils.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/invite/utils.js"),
    },
];

/// `asset`'s strong `ETag`: its SHA-256, quoted; computed once per asset, not per request.
pub fn etag(asset: &Asset) -> &'static str {
    use sha2::Digest;
    static TAGS: std::sync::LazyLock<Vec<(&'static str, String)>> =
        std::sync::LazyLock::new(|| {
            ASSETS
                .iter()
                .map(|a| {
                    (
                        a.name,
                        format!("\"{}\"", hex::encode(sha2::Sha256::digest(a.bytes))),
                    )
                })
                .collect()
        });
    TAGS.iter()
        .find(|(name, _)| *name == asset.name)
        .map_or("", |(_, tag)| tag.as_str())
}

/// The asset called `name`, if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_plain() {
        let mut seen = std::collections::BTreeSet::new();
        for a in ASSETS {
            assert!(seen.insert(a.name), "{} twice", a.name);
            assert!(
                a.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "{}",
                a.name
            );
            assert!(!a.bytes.is_empty(), "{} is empty", a.name);
            assert_eq!(asset(a.name), Some(a));
        }
        for bad in ["", "index.html", "../invite.js", "README.md", "INVITE.JS"] {
            assert_eq!(asset(bad), None, "{bad}");
        }
    }

    /// The vendored files are the ones `assets/invite/README.md` records (name and SHA-256),
    /// so a changed library cannot slip in without its record changing too.
    #[test]
    fn vendored_files_match_their_recorded_digests() {
        use sha2::Digest;
        let readme = include_str!("../../assets/invite/README.md");
        let mut checked = 0;
        for line in readme.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`');
            let digest = cells.get(3).map(|c| c.trim_matches('`')).unwrap_or("");
            if digest.len() != 64 {
                continue;
            }
            let Some(a) = asset(name) else {
                continue; // a licence file: recorded, not served
            };
            assert_eq!(hex::encode(sha2::Sha256::digest(a.bytes)), digest, "{name}");
            checked += 1;
        }
        assert_eq!(checked, 5, "tus.min.js and the four @noble/hashes modules");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(INDEX.bytes).unwrap();
        for forbidden in ["<style", " style=", " onclick=", " onload=", "javascript:"] {
            assert!(!html.contains(forbidden), "{forbidden}");
        }
        // Every <script> loads a file from this origin's asset path.
        for piece in html.split("<script").skip(1) {
            let head = &piece[..piece.find('>').unwrap()];
            assert!(head.contains("src=\"/invite/assets/"), "{head}");
        }
    }
}
