//! Token encryption at rest.

use secrecy::SecretString;

use crate::domain::{EncryptedToken, ProfileId};
use crate::error::Result;

/// Encrypts profile tokens, binding each ciphertext to its profile (the profile id is the
/// associated data, so a ciphertext copied to another profile does not decrypt).
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
pub trait TokenCipher: Send + Sync {
    /// Encrypts with the newest key.
    fn encrypt(&self, profile_id: ProfileId, token: &SecretString) -> Result<EncryptedToken>;

    /// Decrypts with whichever configured key the ciphertext names;
    /// [`Error::Decrypt`](crate::Error::Decrypt) for an unknown key, a wrong profile or
    /// tampered data.
    fn decrypt(&self, profile_id: ProfileId, token: &EncryptedToken) -> Result<SecretString>;
}
