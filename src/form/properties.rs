//! Properties of the strict form parser, checked on generated input: what any
//! correct encoder produces parses back exactly, a repeated name is always
//! refused however it is spelled, and no byte string makes it panic or
//! disagree with the `form_urlencoded` crate about what a valid form says.

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::sample::Index;

use super::{Form, FormError, MAX_PARAMETERS};

/// Any text, with the characters that mean something in a form well
/// represented: `&`, `=`, `%`, `+`, space, NUL, non-ASCII and emoji.
fn text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec!['&', '=', '%', '+', ' ', '\0', 'é', '\u{301}', '🦀']);
    prop::collection::vec(prop_oneof![special, any::<char>()], 0..12).prop_map(String::from_iter)
}

/// Unique names with any values, as many as a form may hold.
fn pairs(max: usize) -> impl Strategy<Value = HashMap<String, String>> {
    prop::collection::hash_map(text(), text(), 0..=max)
}

/// The encoding every browser and HTTP client uses (`+` for a space).
fn standard(name: &str, value: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish()
}

/// Every byte as a `%XX` escape, in upper or lower case hex: legal, if odd.
fn escaped(name: &str, value: &str, lower: bool) -> String {
    let escape = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if lower {
                    format!("%{b:02x}")
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!("{}={}", escape(name), escape(value))
}

/// One pair in one of the three spellings.
fn encode(name: &str, value: &str, spelling: u8) -> String {
    match spelling % 3 {
        0 => standard(name, value),
        1 => escaped(name, value, false),
        _ => escaped(name, value, true),
    }
}

fn as_map(form: &Form) -> HashMap<String, String> {
    form.iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Bytes that are mostly form syntax (short names, `=`, `&`, `+`, valid
/// escapes) with the odd stray `%` or arbitrary byte, so that generated input
/// often gets past the encoding check to the names and values.
fn form_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        8 => prop::sample::select(b"ab=&+ ".to_vec()).prop_map(|b| vec![b]),
        2 => any::<u8>().prop_map(|b| format!("%{b:02X}").into_bytes()),
        1 => Just(b"%".to_vec()),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn a_standard_encoding_round_trips(pairs in pairs(MAX_PARAMETERS)) {
        let body: Vec<String> = pairs.iter().map(|(k, v)| standard(k, v)).collect();
        let form = Form::parse(body.join("&").as_bytes()).unwrap();
        prop_assert_eq!(as_map(&form), pairs.clone());
        prop_assert_eq!(form.len(), pairs.len());
        for (name, value) in &pairs {
            // `get` reports what was sent, an empty value as absent.
            prop_assert_eq!(form.get(name), Some(value.as_str()).filter(|v| !v.is_empty()));
        }
    }

    #[test]
    fn any_mix_of_legal_spellings_round_trips(
        pairs in pairs(MAX_PARAMETERS),
        spellings in prop::collection::vec(any::<u8>(), MAX_PARAMETERS),
    ) {
        let body: Vec<String> = pairs
            .iter()
            .zip(&spellings)
            .map(|((k, v), s)| encode(k, v, *s))
            .collect();
        let form = Form::parse(body.join("&").as_bytes()).unwrap();
        prop_assert_eq!(as_map(&form), pairs);
    }

    #[test]
    fn a_repeated_name_is_always_refused(
        pairs in pairs(MAX_PARAMETERS - 1).prop_filter("something to repeat", |p| !p.is_empty()),
        which in any::<Index>(),
        at in any::<Index>(),
        value in text(),
        spellings in prop::collection::vec(any::<u8>(), MAX_PARAMETERS),
    ) {
        let mut entries: Vec<(&String, &String)> = pairs.iter().collect();
        let repeated = entries[which.index(entries.len())].0;
        entries.insert(at.index(entries.len() + 1), (repeated, &value));
        let body: Vec<String> = entries
            .iter()
            .zip(&spellings)
            .map(|((k, v), s)| encode(k, v, *s))
            .collect();
        prop_assert_eq!(
            Form::parse(body.join("&").as_bytes()),
            Err(FormError::Repeated(repeated.clone()))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_agree_with_form_urlencoded(
        body in prop_oneof![form_bytes(), prop::collection::vec(any::<u8>(), 0..256)],
    ) {
        // `form_urlencoded` is lenient (it keeps bad escapes and replaces bad
        // UTF-8); where the strict parser accepts, the two must agree.
        let lenient: Vec<(String, String)> = form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        match Form::parse(&body) {
            Ok(form) => {
                prop_assert_eq!(form.len(), lenient.len(), "a name was merged");
                prop_assert_eq!(as_map(&form), lenient.into_iter().collect::<HashMap<_, _>>());
            }
            Err(FormError::Repeated(name)) => {
                prop_assert!(lenient.iter().filter(|(k, _)| *k == name).count() >= 2);
            }
            Err(FormError::TooMany) => prop_assert!(lenient.len() > MAX_PARAMETERS),
            Err(FormError::Encoding) => {
                let text = String::from_utf8_lossy(&body);
                let bad_escape = text
                    .match_indices('%')
                    .any(|(i, _)| !text[i + 1..].chars().take(2).all(|c| c.is_ascii_hexdigit())
                        || text[i + 1..].chars().take(2).count() < 2);
                let bad_utf8 = lenient.iter().any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'));
                prop_assert!(bad_escape || bad_utf8, "refused a well-formed form: {:?}", body);
            }
        }
    }
}
