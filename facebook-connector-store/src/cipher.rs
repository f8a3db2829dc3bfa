//! Token encryption at rest: AES-256-GCM with a random 96-bit nonce, the profile id as
//! associated data and a key id prefix so keys can be rotated.
//!
//! Stored form: `<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>` (no padding).
//!
//! Key configuration: a list of `<key id>:<base64 of 32 bytes>` entries separated by commas or
//! whitespace, **newest first**: the first key encrypts, every listed key decrypts. To rotate,
//! put a new key in front, restart, and drop the old key once every stored token was
//! re-encrypted (re-authorisation or [`TokenKeyring::needs_rotation`] + re-encrypt).

use std::fmt;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use facebook_connector_core::Result;
use facebook_connector_core::domain::{EncryptedToken, ProfileId};
use facebook_connector_core::ports::TokenCipher;
use secrecy::{ExposeSecret, SecretString};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{StoreError, StoreResult};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// One named AES-256 key. The key bytes are wiped on drop and never printed.
struct NamedKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The configured token keys; implements [`TokenCipher`].
pub struct TokenKeyring {
    /// Newest first; never empty.
    keys: Vec<NamedKey>,
}

impl fmt::Debug for TokenKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("TokenKeyring")
            .field("key_ids", &ids)
            .field("keys", &"[redacted]")
            .finish()
    }
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl TokenKeyring {
    /// Parses a key list (`<key id>:<base64 of 32 bytes>`, separated by commas or whitespace,
    /// newest first). Errors name the offending key id or position, never key material.
    pub fn parse(config: &SecretString) -> StoreResult<TokenKeyring> {
        let mut keys = Vec::new();
        for (index, entry) in config
            .expose_secret()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let Some((id, encoded)) = entry.split_once(':') else {
                return Err(StoreError::InvalidKeys {
                    reason: format!("entry {} is not <key id>:<base64 key>", index + 1),
                });
            };
            if !valid_key_id(id) {
                return Err(StoreError::InvalidKeys {
                    reason: format!(
                        "entry {} has an invalid key id: use 1-32 letters, digits, '_', '-' or '.'",
                        index + 1
                    ),
                });
            }
            let bytes = Zeroizing::new(STANDARD.decode(encoded.trim()).or_else(|_| {
                URL_SAFE_NO_PAD
                    .decode(encoded.trim().trim_end_matches('='))
                    .map_err(|_| StoreError::InvalidKeys {
                        reason: format!("key {id} is not valid base64"),
                    })
            })?);
            if bytes.len() != KEY_LEN {
                return Err(StoreError::InvalidKeys {
                    reason: format!("key {id} is {} bytes, expected {KEY_LEN}", bytes.len()),
                });
            }
            if keys.iter().any(|k: &NamedKey| k.id == id) {
                return Err(StoreError::InvalidKeys {
                    reason: format!("key id {id} is listed twice"),
                });
            }
            let key = Key::<Aes256Gcm>::try_from(bytes.as_slice()).map_err(|_| {
                StoreError::InvalidKeys {
                    reason: format!("key {id} is not {KEY_LEN} bytes"),
                }
            })?;
            keys.push(NamedKey {
                id: id.to_owned(),
                cipher: Aes256Gcm::new(&key),
            });
            let mut key = key;
            key.as_mut_slice().zeroize();
        }
        if keys.is_empty() {
            return Err(StoreError::InvalidKeys {
                reason: "no key configured".into(),
            });
        }
        Ok(TokenKeyring { keys })
    }

    /// A fresh random key entry `<key id>:<base64 of 32 bytes>` for the configuration.
    pub fn generate_key(key_id: &str) -> StoreResult<SecretString> {
        if !valid_key_id(key_id) {
            return Err(StoreError::InvalidKeys {
                reason: "invalid key id: use 1-32 letters, digits, '_', '-' or '.'".into(),
            });
        }
        let mut key = Key::<Aes256Gcm>::try_generate().map_err(|_| StoreError::Cipher {
            reason: "the system random number generator failed".into(),
        })?;
        let encoded = Zeroizing::new(STANDARD.encode(key.as_slice()));
        key.as_mut_slice().zeroize();
        Ok(SecretString::from(format!("{key_id}:{}", encoded.as_str())))
    }

    /// Id of the key new tokens are encrypted with.
    pub fn current_key_id(&self) -> &str {
        self.keys.first().map(|k| k.id.as_str()).unwrap_or("")
    }

    /// Ids of every configured key, newest first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Whether `token` was encrypted with an older key than the current one.
    pub fn needs_rotation(&self, token: &EncryptedToken) -> bool {
        token
            .0
            .split_once(':')
            .is_none_or(|(id, _)| id != self.current_key_id())
    }

    fn encrypt_raw(&self, profile_id: ProfileId, token: &SecretString) -> StoreResult<String> {
        let key = self.keys.first().ok_or_else(|| StoreError::InvalidKeys {
            reason: "no key configured".into(),
        })?;
        // a fresh random 96-bit nonce per encryption; a failing system RNG is an error, never
        // a panic nor a reused nonce
        let nonce = Nonce::try_generate().map_err(|_| StoreError::Cipher {
            reason: "the system random number generator failed".into(),
        })?;
        let aad = profile_id.to_string();
        let sealed = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: token.expose_secret().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Cipher {
                reason: "encryption failed".into(),
            })?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(nonce.as_slice());
        blob.extend_from_slice(&sealed);
        Ok(format!("{}:{}", key.id, URL_SAFE_NO_PAD.encode(&blob)))
    }

    fn decrypt_raw(
        &self,
        profile_id: ProfileId,
        token: &EncryptedToken,
    ) -> StoreResult<SecretString> {
        let (id, encoded) = token.0.split_once(':').ok_or_else(|| StoreError::Cipher {
            reason: "ciphertext has no key id".into(),
        })?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| StoreError::Cipher {
                reason: format!(
                    "unknown key id {:?}",
                    id.chars().take(32).collect::<String>()
                ),
            })?;
        let blob = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| StoreError::Cipher {
                reason: "ciphertext is not valid base64".into(),
            })?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(StoreError::Cipher {
                reason: "ciphertext is too short".into(),
            });
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| StoreError::Cipher {
            reason: "ciphertext nonce is malformed".into(),
        })?;
        let aad = profile_id.to_string();
        let plain = Zeroizing::new(
            key.cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: sealed,
                        aad: aad.as_bytes(),
                    },
                )
                .map_err(|_| StoreError::Cipher {
                    reason: format!(
                        "authentication failed with key {id}: wrong key, wrong profile or tampered data"
                    ),
                })?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| StoreError::Cipher {
            reason: "decrypted token is not utf-8".into(),
        })?;
        Ok(SecretString::from(text.to_owned()))
    }
}

impl TokenCipher for TokenKeyring {
    fn encrypt(&self, profile_id: ProfileId, token: &SecretString) -> Result<EncryptedToken> {
        Ok(EncryptedToken(self.encrypt_raw(profile_id, token)?))
    }

    fn decrypt(&self, profile_id: ProfileId, token: &EncryptedToken) -> Result<SecretString> {
        Ok(self.decrypt_raw(profile_id, token)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use facebook_connector_core::Error;

    fn pid(n: u128) -> ProfileId {
        ProfileId(uuid::Uuid::from_u128(n))
    }

    fn ring(entries: &[&SecretString]) -> TokenKeyring {
        let joined = entries
            .iter()
            .map(|e| e.expose_secret().to_owned())
            .collect::<Vec<_>>()
            .join(",");
        TokenKeyring::parse(&SecretString::from(joined)).unwrap()
    }

    const TOKEN: &str = "EAAB-super-secret-token-value";

    #[test]
    fn round_trip_uses_random_nonces() {
        let k1 = TokenKeyring::generate_key("k1").unwrap();
        let ring = ring(&[&k1]);
        let secret = SecretString::from(TOKEN.to_owned());
        let a = ring.encrypt(pid(1), &secret).unwrap();
        let b = ring.encrypt(pid(1), &secret).unwrap();
        assert_ne!(a, b, "nonces must differ");
        assert!(a.0.starts_with("k1:"));
        assert!(!a.0.contains(TOKEN));
        assert_eq!(ring.decrypt(pid(1), &a).unwrap().expose_secret(), TOKEN);
        assert_eq!(ring.decrypt(pid(1), &b).unwrap().expose_secret(), TOKEN);
    }

    #[test]
    fn rotation_encrypts_with_newest_and_decrypts_with_any() {
        let old = TokenKeyring::generate_key("old").unwrap();
        let new = TokenKeyring::generate_key("new").unwrap();
        let before = ring(&[&old]);
        let after = ring(&[&new, &old]);
        let secret = SecretString::from(TOKEN.to_owned());
        let legacy = before.encrypt(pid(7), &secret).unwrap();
        assert_eq!(
            after.decrypt(pid(7), &legacy).unwrap().expose_secret(),
            TOKEN
        );
        assert!(after.needs_rotation(&legacy));
        let fresh = after.encrypt(pid(7), &secret).unwrap();
        assert!(fresh.0.starts_with("new:"));
        assert!(!after.needs_rotation(&fresh));
        assert_eq!(after.current_key_id(), "new");
        assert_eq!(after.key_ids(), vec!["new", "old"]);
        // the old keyring does not know the new key: a clear error, not garbage
        assert!(matches!(
            before.decrypt(pid(7), &fresh),
            Err(Error::Decrypt { .. })
        ));
    }

    #[test]
    fn wrong_key_tamper_and_other_profile_fail_with_decrypt() {
        let k1 = TokenKeyring::generate_key("k1").unwrap();
        let other_k1 = TokenKeyring::generate_key("k1").unwrap();
        let ring1 = ring(&[&k1]);
        let impostor = ring(&[&other_k1]);
        let secret = SecretString::from(TOKEN.to_owned());
        let sealed = ring1.encrypt(pid(1), &secret).unwrap();

        assert!(matches!(
            impostor.decrypt(pid(1), &sealed),
            Err(Error::Decrypt { .. })
        ));
        assert!(matches!(
            ring1.decrypt(pid(2), &sealed),
            Err(Error::Decrypt { .. })
        ));

        // flip one bit in every position of the payload: always rejected
        let (id, body) = sealed.0.split_once(':').unwrap();
        let blob = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            let token = EncryptedToken(format!("{id}:{}", URL_SAFE_NO_PAD.encode(&bad)));
            assert!(matches!(
                ring1.decrypt(pid(1), &token),
                Err(Error::Decrypt { .. })
            ));
        }
        for garbage in [
            "",
            "k1",
            "k1:",
            "k1:!!!",
            "k9:AAAA",
            "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let token = EncryptedToken(garbage.to_owned());
            let err = ring1.decrypt(pid(1), &token).unwrap_err();
            assert!(matches!(err, Error::Decrypt { .. }), "{garbage:?}: {err:?}");
        }
    }

    #[test]
    fn keys_and_tokens_never_show_in_debug_or_errors() {
        let k1 = TokenKeyring::generate_key("k1").unwrap();
        let material = k1.expose_secret().split_once(':').unwrap().1.to_owned();
        assert!(!format!("{k1:?}").contains(&material));
        let ring = ring(&[&k1]);
        let printed = format!("{ring:?}");
        assert!(
            printed.contains("k1") && printed.contains("redacted"),
            "{printed}"
        );
        assert!(!printed.contains(&material), "{printed}");

        let secret = SecretString::from(TOKEN.to_owned());
        let sealed = ring.encrypt(pid(1), &secret).unwrap();
        let err = ring.decrypt(pid(2), &sealed).unwrap_err();
        let chain = format!(
            "{err} {:?} {}",
            err,
            std::error::Error::source(&err).unwrap()
        );
        assert!(
            !chain.contains(TOKEN) && !chain.contains(&material),
            "{chain}"
        );

        // a bad configuration names the key id, never the material
        let bad = SecretString::from(format!("k1:{}", &material[..20]));
        let err = TokenKeyring::parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains("k1") && !err.contains(&material[..20]),
            "{err}"
        );
    }

    #[test]
    fn configuration_is_validated() {
        let k1 = TokenKeyring::generate_key("k1").unwrap();
        let k2 = TokenKeyring::generate_key("k2").unwrap();
        let list = SecretString::from(format!(
            " {} ,\n{} ",
            k2.expose_secret(),
            k1.expose_secret()
        ));
        assert_eq!(
            TokenKeyring::parse(&list).unwrap().key_ids(),
            vec!["k2", "k1"]
        );
        for bad in [
            String::new(),
            "k1".to_owned(),
            "k1:notbase64!".to_owned(),
            "k1:AAAA".to_owned(),
            format!("bad id:{}", STANDARD.encode([0u8; 32])),
            format!("{},{}", k1.expose_secret(), k1.expose_secret()),
        ] {
            assert!(
                TokenKeyring::parse(&SecretString::from(bad.clone())).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(TokenKeyring::generate_key("").is_err());
        assert!(TokenKeyring::generate_key("a:b").is_err());
    }

    #[test]
    fn bad_configurations_never_echo_key_material() {
        let entry = TokenKeyring::generate_key("k1").unwrap();
        let material = entry.expose_secret().split_once(':').unwrap().1.to_owned();
        let long = STANDARD.encode([7u8; 33]);
        for bad in [
            material.clone(),
            format!("k!1:{material}"),
            format!("{material}:{material}"),
            format!("k1:{}", &material[..20]),
            format!("k1:{material}!!"),
            format!("k1:{material},k1:{material}"),
            format!("k1:{long}"),
        ] {
            let err = TokenKeyring::parse(&SecretString::from(bad.clone())).unwrap_err();
            let mut printed = format!("{err} {err:?}");
            let core = Error::from(err);
            printed.push_str(&format!(" {core} {core:?}"));
            for secret in [&material, &long] {
                for window in secret.as_bytes().windows(8) {
                    let window = std::str::from_utf8(window).unwrap();
                    assert!(
                        !printed.contains(window),
                        "{printed:?} echoes key material {window:?}"
                    );
                }
            }
        }
    }
}
