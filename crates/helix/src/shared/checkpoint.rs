//! Signed checkpoints of the audit log's head.
//!
//! The hash chain shows an edit, a deletion or a reordering inside the log, but not a log cut
//! short at the end and re-extended. An operator stores a checkpoint (the head's sequence number
//! and hash, signed with Ed25519) somewhere else; `helix audit verify --checkpoint` later proves
//! the log still holds that entry unchanged, so nothing up to it was removed or rewritten.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use helix_store::audit::AuditHead;
use serde::{Deserialize, Serialize};

/// The variable holding the signing key: 64 hex characters (a 32-byte Ed25519 seed).
pub const SIGNING_KEY_VAR: &str = "HELIX_AUDIT_SIGNING_KEY";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub version: u32,
    pub seq: i64,
    pub hash: String,
    pub at: DateTime<Utc>,
    /// Hex of the Ed25519 public key that signed it.
    pub public_key: String,
    /// Hex of the Ed25519 signature over [`Checkpoint::message`].
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "{SIGNING_KEY_VAR} must be 64 hex characters (generate one with `helix audit keygen`)"
    )]
    BadKey,
    #[error("the checkpoint was signed by another key than the one given")]
    OtherKey,
    #[error("the checkpoint's signature is not valid (the file was altered)")]
    BadSignature,
    #[error("the checkpoint file is not a Helix checkpoint: {0}")]
    Malformed(String),
}

impl Checkpoint {
    fn message(seq: i64, hash: &str, at: &DateTime<Utc>) -> String {
        format!(
            "helix-audit-checkpoint:v1\n{seq}\n{hash}\n{}",
            at.to_rfc3339()
        )
    }

    /// Sign the head of the log.
    pub fn sign(head: &AuditHead, key: &SigningKey) -> Self {
        let at = Utc::now();
        let signature = key.sign(Self::message(head.seq, &head.hash, &at).as_bytes());
        Self {
            version: 1,
            seq: head.seq,
            hash: head.hash.clone(),
            at,
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(signature.to_bytes()),
        }
    }

    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        serde_json::from_str(text).map_err(|e| CheckpointError::Malformed(e.to_string()))
    }

    /// Check the signature against the key the operator trusts.
    pub fn verify(&self, trusted: &VerifyingKey) -> Result<(), CheckpointError> {
        if self.public_key != hex::encode(trusted.as_bytes()) {
            return Err(CheckpointError::OtherKey);
        }
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::BadSignature)?;
        trusted
            .verify_strict(
                Self::message(self.seq, &self.hash, &self.at).as_bytes(),
                &Signature::from_bytes(&bytes),
            )
            .map_err(|_| CheckpointError::BadSignature)
    }
}

/// Parse a signing key from its hex seed.
pub fn signing_key(hex_seed: &str) -> Result<SigningKey, CheckpointError> {
    let seed: [u8; 32] = hex::decode(hex_seed.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CheckpointError::BadKey)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Parse a public key from hex.
pub fn verifying_key(hex_key: &str) -> Result<VerifyingKey, CheckpointError> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CheckpointError::BadKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| CheckpointError::BadKey)
}

/// A fresh signing key, as a hex seed.
pub fn generate() -> String {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    hex::encode(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoints_verify_and_alterations_do_not() {
        let key = signing_key(&generate()).expect("key");
        let head = AuditHead {
            seq: 42,
            hash: "ab".repeat(32),
        };
        let cp = Checkpoint::sign(&head, &key);
        let parsed = Checkpoint::parse(&serde_json::to_string(&cp).expect("json")).expect("parse");
        assert_eq!(parsed.verify(&key.verifying_key()), Ok(()));
        let mut shorter = parsed.clone();
        shorter.seq = 41;
        assert_eq!(
            shorter.verify(&key.verifying_key()),
            Err(CheckpointError::BadSignature)
        );
        let other = signing_key(&generate()).expect("key");
        assert_eq!(
            parsed.verify(&other.verifying_key()),
            Err(CheckpointError::OtherKey)
        );
        assert_eq!(signing_key("xyz").err(), Some(CheckpointError::BadKey));
    }
}
