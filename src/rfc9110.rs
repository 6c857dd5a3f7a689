//! RFC 9110 field-value syntax shared by the header parsers: `tchar` and `token` (§5.6.2),
//! optional whitespace (§5.6.3), comma-separated lists (§5.6.1), `quoted-string`
//! (§5.6.4) and `;`-parameters (§5.6.6). Pure: bytes in, typed answers out, no I/O and no
//! imports from the rest of the crate.
//!
//! ```text
//! tchar         = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
//!                 "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
//! token         = 1*tchar
//! OWS           = *( SP / HTAB )
//! #element      = [ element ] *( OWS "," OWS [ element ] )   ; empty elements allowed
//! quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//! qdtext        = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
//! quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
//! parameters    = *( OWS ";" OWS [ parameter ] )
//! parameter     = token "=" ( token / quoted-string )
//! ```
//!
//! Kept exactly from the parsers this module replaced: a `quoted-pair` accepts any byte
//! after the backslash, lists skip empty elements as the grammar's recipients must, and
//! parameters tolerate an empty one only at the end (see [`parameters_well_formed`]).
//!
//! Not here: what a field means (`range::parse` for `Range`, `tus::headers` for the tus
//! fields and `Content-Type`), field-name case folding, and HTTP itself.

/// RFC 9110 §5.6.2 `tchar`.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §5.6.2 `token`: one or more `tchar`.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Strips optional whitespace (SP / HTAB, §5.6.3) from both ends.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The non-empty elements of a comma-separated list (§5.6.1), each with its surrounding
/// OWS removed, in order. Empty elements (`a,,b`, a leading or trailing comma, only
/// whitespace) are skipped, as a recipient must accept them. Lazy: a caller that stops
/// early never looks at the rest of the value.
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// Skips a `quoted-string` at the start of `s` (which must begin with `"`); returns what
/// follows the closing quote, or `None` when `s` does not start with one or it is not
/// closed or holds a control character.
pub fn skip_quoted_string(s: &[u8]) -> Option<&[u8]> {
    let mut q = s.strip_prefix(b"\"")?;
    loop {
        match q.split_first()? {
            (b'"', tail) => return Some(tail),
            (b'\\', tail) => q = tail.split_first()?.1,
            (&b, tail) if b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80 => q = tail,
            _ => return None,
        }
    }
}

/// Skips a `token` at the start of `s`; returns what follows it, or `None` when `s` does
/// not start with a `tchar`.
pub fn skip_token(s: &[u8]) -> Option<&[u8]> {
    let end = s.iter().position(|&b| !is_tchar(b)).unwrap_or(s.len());
    (end > 0).then_some(&s[end..])
}

/// Whether `params` — what follows the first `;` after a media type — is well-formed
/// `parameters`: `token "=" ( token / quoted-string )` items separated by `;` with OWS
/// around them. Empty parameters are tolerated only where no parameter follows them
/// (`a=b;;`, a trailing `;`); `a=b;;c=d` is refused although the grammar allows it — the
/// behaviour of the `Content-Type` check this was taken from, kept unchanged.
pub fn parameters_well_formed(params: &[u8]) -> bool {
    let mut rest = params;
    loop {
        let s = trim_ows(rest);
        if s.is_empty() {
            return true;
        }
        let Some(eq) = s.iter().position(|&b| b == b'=') else {
            // `;` followed by OWS and another `;` is an empty parameter.
            if let Some(tail) = s.strip_prefix(b";") {
                rest = tail;
                continue;
            }
            return false;
        };
        let (name, value) = (&s[..eq], &s[eq + 1..]);
        if !is_token(name) {
            return false;
        }
        let after = if value.starts_with(b"\"") {
            skip_quoted_string(value)
        } else {
            skip_token(value)
        };
        let Some(after) = after else {
            return false;
        };
        match trim_ows(after).split_first() {
            None => return true,
            Some((b';', tail)) => rest = tail,
            Some(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_is_exactly_the_rfc_set() {
        let specials = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            let want = b.is_ascii_digit() || b.is_ascii_alphabetic() || specials.contains(&b);
            assert_eq!(is_tchar(b), want, "{b:#04x}");
        }
        // Separators and whitespace are not tchar.
        for b in b"\"(),/:;<=>?@[\\]{} \t" {
            assert!(!is_tchar(*b), "{:?}", *b as char);
        }
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"bytes"));
        assert!(is_token(b"Upload-Checksum"));
        assert!(is_token(b"!#$%&'*+-.^_`|~09azAZ"));
        assert!(!is_token(b""));
        assert!(!is_token(b"by tes"));
        assert!(!is_token(b"a=b"));
        assert!(!is_token("é".as_bytes()));
    }

    #[test]
    fn ows_is_only_space_and_tab() {
        assert_eq!(trim_ows(b" \t a b \t "), b"a b");
        assert_eq!(trim_ows(b"\t\t"), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"\r\na\r\n"), b"\r\na\r\n");
        assert_eq!(trim_ows(b"\x0ba"), b"\x0ba");
    }

    #[test]
    fn list_elements_skip_empties_and_trim() {
        let got: Vec<&[u8]> = list_elements(b" a ,, \tb c\t,,").collect();
        assert_eq!(got, [&b"a"[..], b"b c"]);
        assert_eq!(list_elements(b"").count(), 0);
        assert_eq!(list_elements(b" , ,\t,").count(), 0);
        let got: Vec<&[u8]> = list_elements(b"x").collect();
        assert_eq!(got, [&b"x"[..]]);
    }

    /// Every prefix of a list yields exactly the elements a reference split finds in it.
    #[test]
    fn list_elements_every_prefix() {
        let value = b" gzip ,, br;q=1 ,\tx-custom\t,";
        for end in 0..=value.len() {
            let prefix = &value[..end];
            let got: Vec<&[u8]> = list_elements(prefix).collect();
            let want: Vec<&[u8]> = prefix
                .split(|&b| b == b',')
                .map(|e| {
                    let s = e.iter().position(|&b| b != b' ' && b != b'\t');
                    let t = e.iter().rposition(|&b| b != b' ' && b != b'\t');
                    match (s, t) {
                        (Some(s), Some(t)) => &e[s..=t],
                        _ => &e[..0],
                    }
                })
                .filter(|e| !e.is_empty())
                .collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(prefix));
        }
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(skip_quoted_string(b"\"\"rest"), Some(&b"rest"[..]));
        assert_eq!(skip_quoted_string(b"\"a b\\\"c\";x"), Some(&b";x"[..]));
        assert_eq!(skip_quoted_string(b"\"\t\x80\""), Some(&b""[..]));
        assert_eq!(skip_quoted_string(b"no quote"), None);
        assert_eq!(skip_quoted_string(b"\"ctl\x01\""), None);
        assert_eq!(skip_quoted_string(b"\"del\x7f\""), None);
    }

    /// No proper prefix of a quoted-string is one: the parser never accepts a value cut off
    /// inside the quotes, wherever the cut is (including right after a backslash).
    #[test]
    fn quoted_string_every_prefix() {
        let full = b"\"a\\\"b;c=d \\\\\"";
        assert_eq!(skip_quoted_string(full), Some(&b""[..]));
        for end in 0..full.len() {
            assert_eq!(skip_quoted_string(&full[..end]), None, "prefix {end}");
        }
    }

    #[test]
    fn tokens_are_skipped_to_the_first_non_tchar() {
        assert_eq!(skip_token(b"utf-8; x"), Some(&b"; x"[..]));
        assert_eq!(skip_token(b"abc"), Some(&b""[..]));
        assert_eq!(skip_token(b""), None);
        assert_eq!(skip_token(b" abc"), None);
        assert_eq!(skip_token(b"\"q\""), None);
    }

    #[test]
    fn parameters() {
        for ok in [
            "",
            " ",
            "charset=utf-8",
            " charset=utf-8 ",
            "a=b; c=\"d;e\"",
            "a=b;;",
            ";",
            "a=b;",
            "a=\"\"",
        ] {
            assert!(parameters_well_formed(ok.as_bytes()), "{ok:?}");
        }
        for bad in [
            "a",
            "=b",
            "a=",
            "a b=c",
            "charset = utf-8",
            "a=b c",
            "a=\"unclosed",
            "a=b;c",
            "a=\"x\"y",
            "a=b,c=d",
            // The quirk documented on the function: an empty parameter before another.
            "a=b;;c=d",
            ";c=d",
        ] {
            assert!(!parameters_well_formed(bad.as_bytes()), "{bad:?}");
        }
    }

    /// Every prefix of a parameter list: accepted exactly where a parameter (or an empty
    /// one) has just ended, refused everywhere else, never a panic.
    #[test]
    fn parameters_every_prefix() {
        let full = "a=1; b=\"x;y\"";
        let accepted: &[usize] = &[0, 3, 4, 5, full.len()];
        for end in 0..=full.len() {
            let prefix = &full.as_bytes()[..end];
            assert_eq!(
                parameters_well_formed(prefix),
                accepted.contains(&end),
                "{:?}",
                &full[..end]
            );
        }
    }
}
