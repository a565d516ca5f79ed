//! Signing keys: the HS256 secret, EdDSA (Ed25519) and ES256 (P-256) key
//! pairs from PEM files, the JWKS that publishes the public ones, and key
//! generation for `gatehouse gen-key`.
//!
//! Every key has a `kid` and exactly one algorithm. Asymmetric keys are
//! named by their RFC 7638 thumbprint; the HMAC key by a hash of the secret
//! that reveals nothing of it. An HMAC key is never published.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::Secret;

/// A key that verifies tokens, with its one algorithm and prepared validation.
pub(crate) struct VerifyingKey {
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
    pub(crate) validation: Validation,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    fn new(alg: Algorithm, key: DecodingKey) -> Self {
        let mut validation = Validation::new(alg);
        // Time is checked by `TokenVerifier::verify` against the caller's `now`,
        // issuer and audience by exact comparison there.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        Self {
            alg,
            key,
            validation,
        }
    }
}

/// A key that signs new tokens.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) key: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// An Ed25519 or P-256 key from a PEM file or a JWK: always its public
/// half, and the private half when it can sign.
pub struct AsymmetricKey {
    kid: String,
    alg: Algorithm,
    jwk: Value,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
}

impl std::fmt::Debug for AsymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsymmetricKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private", &self.encoding.is_some())
            .finish()
    }
}

/// The algorithms `gatehouse gen-key` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgorithm {
    /// Ed25519 signatures (RFC 8037).
    #[value(name = "EdDSA")]
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
}

impl AsymmetricKey {
    /// The key id (RFC 7638 thumbprint of the public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether the private half is present.
    pub fn can_sign(&self) -> bool {
        self.encoding.is_some()
    }

    /// The public JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// Reads a PKCS#8 private key or an SPKI public key in PEM form.
    ///
    /// # Errors
    /// The text is not an Ed25519 or P-256 key in either form.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
            return Self::ed25519(key.verifying_key().as_bytes(), Some(der.as_bytes()));
        }
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Self::ed25519(key.as_bytes(), None);
        }
        if let Ok(key) = p256::SecretKey::from_pkcs8_pem(pem) {
            let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
            return Self::p256(&key.public_key(), Some(der.as_bytes()));
        }
        if let Ok(key) = p256::PublicKey::from_public_key_pem(pem) {
            return Self::p256(&key, None);
        }
        Err("not an Ed25519 or P-256 key in PKCS#8 or SPKI PEM form".to_owned())
    }

    /// Reads a key file.
    ///
    /// # Errors
    /// Unreadable, or not a supported key; the message names the file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("could not read the key file {}: {e}", path.display()))?;
        Self::from_pem(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A public key from a JWK of a JWKS (`OKP`/`Ed25519` or `EC`/`P-256`).
    ///
    /// # Errors
    /// Another key type, or malformed coordinates.
    pub fn from_jwk(jwk: &Value) -> Result<Self, String> {
        let field = |name: &str| {
            jwk.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("the JWK lacks {name:?}"))
        };
        let decode = |name: &str| {
            URL_SAFE_NO_PAD
                .decode(field(name)?)
                .map_err(|_| format!("the JWK's {name:?} is not base64url"))
        };
        match (field("kty")?, field("crv")?) {
            ("OKP", "Ed25519") => {
                let x: [u8; 32] = decode("x")?
                    .try_into()
                    .map_err(|_| "the Ed25519 key is not 32 bytes".to_owned())?;
                ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
                Self::ed25519(&x, None)
            }
            ("EC", "P-256") => {
                let (x, y) = (decode("x")?, decode("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("the P-256 coordinates are not 32 bytes".to_owned());
                }
                let point = p256::EncodedPoint::from_affine_coordinates(
                    x.as_slice().into(),
                    y.as_slice().into(),
                    false,
                );
                let key = p256::PublicKey::from_sec1_bytes(point.as_bytes())
                    .map_err(|_| "the P-256 point is not on the curve".to_owned())?;
                Self::p256(&key, None)
            }
            (kty, crv) => Err(format!("unsupported key type {kty}/{crv}")),
        }
    }

    fn ed25519(public: &[u8; 32], private_der: Option<&[u8]>) -> Result<Self, String> {
        let x = URL_SAFE_NO_PAD.encode(public);
        let thumbprint_input = json!({"crv": "Ed25519", "kty": "OKP", "x": x});
        let kid = thumbprint(&thumbprint_input);
        let decoding = DecodingKey::from_ed_components(&x).map_err(|e| e.to_string())?;
        Ok(Self {
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}),
            kid,
            alg: Algorithm::EdDSA,
            decoding,
            encoding: private_der.map(EncodingKey::from_ed_der),
        })
    }

    fn p256(public: &p256::PublicKey, private_der: Option<&[u8]>) -> Result<Self, String> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let point = public.to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err("the P-256 key is the identity point".to_owned());
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        let kid = thumbprint(&json!({"crv": "P-256", "kty": "EC", "x": x, "y": y}));
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
        Ok(Self {
            jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"}),
            kid,
            alg: Algorithm::ES256,
            decoding,
            encoding: private_der.map(EncodingKey::from_ec_der),
        })
    }
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, which
/// `serde_json` keeps (its maps are sorted without `preserve_order`).
fn thumbprint(required_members: &Value) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(required_members.to_string().as_bytes()))
}

/// A stable public name for an HMAC key that reveals nothing of it.
fn hmac_kid(secret: &Secret) -> String {
    let digest = Sha256::new()
        .chain_update(b"gatehouse-kid:")
        .chain_update(secret.expose().as_bytes())
        .finalize();
    format!("hs256-{}", &hex::encode(digest)[..16])
}

/// A JSON Web Key Set document (RFC 7517 §5).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    /// The public keys.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<Value>,
}

/// The signing key and every key that verifies, by `kid`.
#[derive(Debug)]
pub struct KeySet {
    pub(crate) signing: Option<SigningKey>,
    pub(crate) verifying: HashMap<String, VerifyingKey>,
    public: Vec<Value>,
}

impl KeySet {
    /// HS256 only, with the given secret (its length is checked by the config module).
    pub fn hs256(secret: &Secret) -> Self {
        let mut set = Self::empty();
        set.add_hmac(secret, true);
        set
    }

    /// Builds the server's keys: the asymmetric `signing` key signs if given
    /// (else HS256 with `secret`), and every other key only verifies.
    ///
    /// # Errors
    /// No way to sign, a signing key without its private half, or two keys
    /// with the same `kid`.
    pub fn new(
        secret: Option<&Secret>,
        signing: Option<&AsymmetricKey>,
        verifying: &[&AsymmetricKey],
    ) -> Result<Self, String> {
        let mut set = Self::empty();
        if let Some(secret) = secret {
            set.add_hmac(secret, signing.is_none());
        }
        if let Some(key) = signing {
            let encoding = key
                .encoding
                .clone()
                .ok_or_else(|| format!("the signing key {} has no private half", key.kid))?;
            set.signing = Some(SigningKey {
                kid: key.kid.clone(),
                alg: key.alg,
                key: encoding,
            });
            set.add_public(key)?;
        }
        for key in verifying {
            set.add_public(key)?;
        }
        if set.signing.is_none() {
            return Err("no signing key: set SECRET_KEY_ENV or GATEHOUSE_SIGNING_KEY".to_owned());
        }
        Ok(set)
    }

    /// Verify-only keys from a JWKS document (for resource servers).
    /// Keys of unsupported types are skipped; HMAC keys are never accepted
    /// from a JWKS.
    pub fn from_jwks(jwks: &Jwks) -> Self {
        let mut set = Self::empty();
        for jwk in &jwks.keys {
            match AsymmetricKey::from_jwk(jwk) {
                Ok(key) => {
                    // A JWK may name its kid; keep the published one if it has one.
                    let kid = jwk
                        .get("kid")
                        .and_then(Value::as_str)
                        .unwrap_or(&key.kid)
                        .to_owned();
                    set.verifying
                        .insert(kid, VerifyingKey::new(key.alg, key.decoding.clone()));
                }
                Err(error) => tracing::warn!(%error, "skipping a key of the JWKS"),
            }
        }
        set
    }

    fn empty() -> Self {
        Self {
            signing: None,
            verifying: HashMap::new(),
            public: Vec::new(),
        }
    }

    fn add_hmac(&mut self, secret: &Secret, signs: bool) {
        let kid = hmac_kid(secret);
        let bytes = secret.expose().as_bytes();
        self.verifying.insert(
            kid.clone(),
            VerifyingKey::new(Algorithm::HS256, DecodingKey::from_secret(bytes)),
        );
        if signs {
            self.signing = Some(SigningKey {
                kid,
                alg: Algorithm::HS256,
                key: EncodingKey::from_secret(bytes),
            });
        }
    }

    fn add_public(&mut self, key: &AsymmetricKey) -> Result<(), String> {
        if self.verifying.contains_key(&key.kid) {
            return Err(format!("the key {} is configured twice", key.kid));
        }
        self.verifying.insert(
            key.kid.clone(),
            VerifyingKey::new(key.alg, key.decoding.clone()),
        );
        self.public.push(key.jwk.clone());
        Ok(())
    }

    /// The `kid` new tokens carry, if this set can sign.
    pub fn signing_kid(&self) -> Option<&str> {
        self.signing.as_ref().map(|k| k.kid.as_str())
    }

    /// The algorithm new tokens are signed with, if this set can sign.
    pub fn signing_algorithm(&self) -> Option<Algorithm> {
        self.signing.as_ref().map(|k| k.alg)
    }

    /// Every algorithm a token may be verified with.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algs: Vec<Algorithm> = self.verifying.values().map(|k| k.alg).collect();
        algs.sort_by_key(|a| format!("{a:?}"));
        algs.dedup();
        algs
    }

    /// Whether a key with this `kid` verifies tokens.
    pub fn knows(&self, kid: &str) -> bool {
        self.verifying.contains_key(kid)
    }

    /// The public keys as a JWKS; never an HMAC secret.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self.public.clone(),
        }
    }
}

/// Writes a new key pair to `dir` as `<kid>.private.pem` (mode 0600) and
/// `<kid>.public.pem`, and returns the key with both paths.
///
/// # Errors
/// The directory cannot be created or a file cannot be written.
pub fn generate_key_files(
    alg: KeyAlgorithm,
    dir: &Path,
) -> Result<(AsymmetricKey, PathBuf, PathBuf), String> {
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    let mut rng = rand::rngs::OsRng;
    let (private_pem, public_pem) = match alg {
        KeyAlgorithm::EdDsa => {
            let key = ed25519_dalek::SigningKey::generate(&mut rng);
            (
                key.to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| e.to_string())?,
                key.verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| e.to_string())?,
            )
        }
        KeyAlgorithm::Es256 => {
            let key = p256::SecretKey::random(&mut rng);
            (
                key.to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| e.to_string())?,
                key.public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| e.to_string())?,
            )
        }
    };
    let key = AsymmetricKey::from_pem(&private_pem)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    let private_path = dir.join(format!("{}.private.pem", key.kid));
    let public_path = dir.join(format!("{}.public.pem", key.kid));
    write_new_file(&private_path, private_pem.as_bytes(), 0o600)?;
    write_new_file(&public_path, public_pem.as_bytes(), 0o644)?;
    Ok((key, private_path, public_path))
}

fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
        .open(path)
        .and_then(|mut file| file.write_all(contents))
        .map_err(|e| format!("could not write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_their_files_and_jwks() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [KeyAlgorithm::EdDsa, KeyAlgorithm::Es256] {
            let (key, private, public) = generate_key_files(alg, dir.path()).unwrap();
            assert!(key.can_sign());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&private).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            let from_private = AsymmetricKey::from_file(&private).unwrap();
            let from_public = AsymmetricKey::from_file(&public).unwrap();
            assert_eq!(from_private.kid(), key.kid());
            assert_eq!(from_public.kid(), key.kid());
            assert!(!from_public.can_sign());
            let from_jwk = AsymmetricKey::from_jwk(key.jwk()).unwrap();
            assert_eq!(from_jwk.kid(), key.kid());
            assert_eq!(from_jwk.algorithm(), key.algorithm());
        }
    }

    #[test]
    fn the_thumbprint_matches_rfc_8037_appendix_a3() {
        let jwk =
            json!({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let key = AsymmetricKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn the_jwks_never_holds_the_hmac_secret() {
        let secret = Secret::new("s".repeat(40));
        assert!(KeySet::hs256(&secret).jwks().keys.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let (key, _, _) = generate_key_files(KeyAlgorithm::EdDsa, dir.path()).unwrap();
        let set = KeySet::new(Some(&secret), Some(&key), &[]).unwrap();
        let jwks = serde_json::to_string(&set.jwks()).unwrap();
        assert!(!jwks.contains(&"s".repeat(40)));
        assert_eq!(set.jwks().keys.len(), 1);
        assert_eq!(set.signing_kid(), Some(key.kid()));
        assert_eq!(set.algorithms(), [Algorithm::EdDSA, Algorithm::HS256]);
    }

    #[test]
    fn a_public_key_cannot_sign_and_duplicates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, public) = generate_key_files(KeyAlgorithm::Es256, dir.path()).unwrap();
        let public = AsymmetricKey::from_file(&public).unwrap();
        let error = KeySet::new(None, Some(&public), &[]).unwrap_err();
        assert!(error.contains("no private half"), "{error}");
        let secret = Secret::new("s".repeat(40));
        let error = KeySet::new(Some(&secret), None, &[&public, &public]).unwrap_err();
        assert!(error.contains("twice"), "{error}");
    }

    #[test]
    fn malformed_jwks_are_refused_without_panicking() {
        for jwk in [
            json!({"kty":"OKP","crv":"Ed25519","x":"AAAA"}),
            json!({"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}),
            json!({"kty":"oct","k":"c2VjcmV0"}),
            json!({"kty":"RSA","crv":"x"}),
            json!("not an object"),
        ] {
            assert!(AsymmetricKey::from_jwk(&jwk).is_err(), "{jwk}");
        }
    }
}
