//! Keys and the two primitives the repository uses: XChaCha20-Poly1305 sealed
//! boxes and keyed BLAKE3. No I/O here; the caller supplies nonces and salts
//! from its random source, so tests can be deterministic.

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};
pub use crate::format::keyfile::SecretKey;
use crate::format::keyfile::{KdfParams, KeySet, KEY_LEN, SALT_LEN};
use crate::format::sealed::{self, BoxKind, NONCE_LEN};
use crate::format::Id;

/// The repository's master keys, opened from a key object.
pub struct MasterKeys {
    set: KeySet,
}

impl MasterKeys {
    pub fn generate(rng: &mut impl rand::RngCore) -> Self {
        let mut key = || {
            let mut k = Zeroizing::new([0u8; KEY_LEN]);
            rng.fill_bytes(&mut k[..]);
            k
        };
        let id_key = key();
        let chunker_key = key();
        let data_key = key();
        MasterKeys {
            set: KeySet::new(id_key, chunker_key, (0, data_key)),
        }
    }

    pub fn from_keyset(set: KeySet) -> Self {
        MasterKeys { set }
    }

    pub fn keyset(&self) -> &KeySet {
        &self.set
    }

    fn key_for(&self, epoch: u32) -> Result<&SecretKey> {
        self.set
            .data_keys()
            .find(|(e, _)| *e == epoch)
            .map(|(_, k)| k)
            .ok_or_else(|| Error::corrupt(format!("sealed with unknown key epoch {epoch}")))
    }

    /// Chunk id: BLAKE3 keyed with the repository's id key, so storage
    /// access alone cannot test whether a known file is stored.
    pub fn blob_id(&self, data: &[u8]) -> Id {
        Id::from_bytes(*blake3::keyed_hash(self.set.id_key(), data).as_bytes())
    }

    /// Seed for the chunker's gear table, derived from the chunker key.
    pub fn chunker_seed(&self) -> u64 {
        let derived = blake3::keyed_hash(self.set.chunker_key(), b"vault fastcdc gear seed");
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&derived.as_bytes()[..8]);
        u64::from_le_bytes(seed)
    }

    pub fn seal(
        &self,
        kind: BoxKind,
        blob_id: Option<&Id>,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Vec<u8> {
        let (epoch, key) = self.set.current();
        seal_with(key, epoch, kind, blob_id, plaintext, nonce)
    }

    pub fn open(&self, kind: BoxKind, blob_id: Option<&Id>, boxed: &[u8]) -> Result<Vec<u8>> {
        let parts = sealed::split(boxed)?;
        // An epoch we hold no key for is an edited header or a box from
        // another repository: either way the box does not authenticate.
        let key = self.key_for(parts.epoch).map_err(|_| {
            Error::new(
                ErrorKind::Tampered,
                format!("sealed under key epoch {} that no key holds", parts.epoch),
            )
        })?;
        open_with(key, kind, blob_id, boxed)
    }
}

pub fn seal_with(
    key: &SecretKey,
    epoch: u32,
    kind: BoxKind,
    blob_id: Option<&Id>,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key[..].into());
    let aad = sealed::associated_data(kind, blob_id, epoch);
    // Encrypted where it lies in the box: one buffer per box, not a second
    // for the ciphertext copied into it.
    let mut out = Vec::with_capacity(sealed::OVERHEAD + plaintext.len());
    out.extend_from_slice(&sealed::header(epoch, &nonce));
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(
            XNonce::from_slice(&nonce),
            &aad,
            &mut out[sealed::HEADER_LEN..],
        )
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
    out.extend_from_slice(&tag);
    out
}

pub fn open_with(
    key: &SecretKey,
    kind: BoxKind,
    blob_id: Option<&Id>,
    boxed: &[u8],
) -> Result<Vec<u8>> {
    let parts = sealed::split(boxed)?;
    let cipher = XChaCha20Poly1305::new(key[..].into());
    let aad = sealed::associated_data(kind, blob_id, parts.epoch);
    cipher
        .decrypt(
            XNonce::from_slice(&parts.nonce),
            Payload {
                msg: parts.ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| {
            Error::new(
                ErrorKind::Tampered,
                "authentication failed (altered, truncated or misplaced data)",
            )
        })
}

/// The key a password derives, which seals one key object's key set.
pub fn derive_wrapping_key(
    password: &[u8],
    salt: &[u8; SALT_LEN],
    params: &KdfParams,
) -> Result<SecretKey> {
    params.validate()?;
    let argon_params = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(KEY_LEN),
    )
    .map_err(|e| Error::invalid(format!("argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(password, salt, &mut out[..])
        .map_err(|e| Error::invalid(format!("argon2: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn keys() -> MasterKeys {
        MasterKeys::generate(&mut rand::rngs::StdRng::seed_from_u64(7))
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(data: Vec<u8>, nonce: [u8; 24], id: [u8; 32]) {
            let k = keys();
            let id = Id::from_bytes(id);
            let boxed = k.seal(BoxKind::DataBlob, Some(&id), &data, nonce);
            prop_assert_eq!(boxed.len(), data.len() + sealed::OVERHEAD);
            prop_assert_eq!(k.open(BoxKind::DataBlob, Some(&id), &boxed).unwrap(), data);
        }

        #[test]
        fn any_flipped_bit_is_detected(data: Vec<u8>, pos: usize, bit in 0u8..8) {
            let k = keys();
            let mut boxed = k.seal(BoxKind::Snapshot, None, &data, [9; 24]);
            let pos = pos % boxed.len();
            boxed[pos] ^= 1 << bit;
            prop_assert!(k.open(BoxKind::Snapshot, None, &boxed).is_err());
        }
    }

    /// A box is header, ciphertext, tag: exactly what the one-shot
    /// encryption gives, however the sealing arranges its buffers.
    #[test]
    fn a_box_is_the_header_then_the_aead_output() {
        let k = keys();
        let id = Id::from_bytes([5; 32]);
        let plaintext: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let boxed = k.seal(BoxKind::DataBlob, Some(&id), &plaintext, [3; 24]);
        let (epoch, key) = k.set.current();
        let expected = XChaCha20Poly1305::new(key[..].into())
            .encrypt(
                XNonce::from_slice(&[3; 24]),
                Payload {
                    msg: &plaintext,
                    aad: &sealed::associated_data(BoxKind::DataBlob, Some(&id), epoch),
                },
            )
            .unwrap();
        assert_eq!(
            &boxed[..sealed::HEADER_LEN],
            &sealed::header(epoch, &[3; 24])[..]
        );
        assert_eq!(&boxed[sealed::HEADER_LEN..], &expected[..]);
    }

    #[test]
    fn a_box_does_not_open_as_another_kind_or_blob() {
        let k = keys();
        let a = Id::from_bytes([1; 32]);
        let b = Id::from_bytes([2; 32]);
        let boxed = k.seal(BoxKind::DataBlob, Some(&a), b"x", [0; 24]);
        assert!(k.open(BoxKind::TreeBlob, Some(&a), &boxed).is_err());
        let err = k.open(BoxKind::DataBlob, Some(&b), &boxed).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tampered);
    }

    #[test]
    fn blob_ids_depend_on_the_key() {
        let other = MasterKeys::generate(&mut rand::rngs::StdRng::seed_from_u64(8));
        assert_ne!(keys().blob_id(b"same"), other.blob_id(b"same"));
        assert_eq!(keys().blob_id(b"same"), keys().blob_id(b"same"));
    }
}
