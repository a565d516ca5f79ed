//! A strict `application/x-www-form-urlencoded` parser for the token
//! endpoint (RFC 6749 §3.2 and Appendix B): every parameter at most once,
//! valid percent-encoding of valid UTF-8, and an empty value counts as absent.

use std::collections::HashMap;

/// Most parameters accepted in one form.
pub const MAX_PARAMETERS: usize = 32;

/// Why a form was refused; the text is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A parameter appears more than once (RFC 6749 §3.2).
    #[error("the parameter {0:?} is repeated")]
    Repeated(String),
    /// A name or value is not valid percent-encoded UTF-8.
    #[error("the form is not valid percent-encoded UTF-8")]
    Encoding,
    /// More than [`MAX_PARAMETERS`] parameters.
    #[error("the form has too many parameters")]
    TooMany,
}

/// Parsed form parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    params: HashMap<String, String>,
}

impl Form {
    /// Parses a form body.
    ///
    /// # Errors
    /// A repeated parameter, bad encoding, or too many parameters.
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let mut params = HashMap::new();
        let mut seen = 0usize;
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            seen += 1;
            if seen > MAX_PARAMETERS {
                return Err(FormError::TooMany);
            }
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let name = decode(name)?;
            let value = decode(value)?;
            if params.contains_key(&name) {
                return Err(FormError::Repeated(name));
            }
            params.insert(name, value);
        }
        Ok(Self { params })
    }

    /// The value of `name`; an empty value is treated as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Every parameter as sent, empty values included, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many parameters were sent.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether no parameter was sent.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

fn decode(raw: &[u8]) -> Result<String, FormError> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    if !well_formed_escapes(&plus_as_space) {
        return Err(FormError::Encoding);
    }
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| FormError::Encoding)
}

/// Every `%` is followed by two hex digits.
fn well_formed_escapes(raw: &[u8]) -> bool {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let ok = raw.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && raw.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plus_and_percent_escapes() {
        let form = Form::parse(b"username=j%C3%B6rg+x&password=a%26b%3Dc&scope=").unwrap();
        assert_eq!(form.get("username"), Some("jörg x"));
        assert_eq!(form.get("password"), Some("a&b=c"));
        assert_eq!(form.get("scope"), None, "empty counts as absent");
        assert_eq!(form.get("missing"), None);
    }

    #[test]
    fn repeated_parameters_are_refused_even_when_empty() {
        assert_eq!(
            Form::parse(b"a=1&a=2"),
            Err(FormError::Repeated("a".to_owned()))
        );
        assert_eq!(
            Form::parse(b"a=&a=2"),
            Err(FormError::Repeated("a".to_owned()))
        );
    }

    #[test]
    fn bad_encodings_are_refused() {
        for body in [&b"a=%ff"[..], b"a=%zz", b"a=%4", b"a=\xff", b"%c3=1"] {
            assert_eq!(Form::parse(body), Err(FormError::Encoding), "{body:?}");
        }
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let body: Vec<String> = (0..=MAX_PARAMETERS).map(|i| format!("p{i}=1")).collect();
        assert_eq!(
            Form::parse(body.join("&").as_bytes()),
            Err(FormError::TooMany)
        );
    }
}
