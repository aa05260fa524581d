//! Ed25519 signing and verification of trace records, key modes and key files (gate.md §5.3).
//!
//! Invariant: the signature covers the 32 raw bytes of `sha256(JCS(record without "signature"))`.
//! Verification JCSes the *parsed* JSON object minus `signature`, so fields this version does
//! not know (written by Go or a later gait) are covered and still verify.

use super::TraceError;
use super::record::{Signature, TraceRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{SigningKey, Verifier as _, VerifyingKey};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Warning added to outputs whenever a dev-mode ephemeral key signed something.
pub const DEV_KEY_WARNING: &str =
    "dev mode: ephemeral keypair generated; signatures will not verify across machines";

/// Largest key file accepted (a key is < 100 bytes of base64).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// `--key-mode`: `dev` (ephemeral key) or `prod` (explicit private key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyMode {
    #[default]
    Dev,
    Prod,
}

impl KeyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyMode::Dev => "dev",
            KeyMode::Prod => "prod",
        }
    }
}

impl fmt::Display for KeyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyMode {
    type Err = TraceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "dev" => Ok(KeyMode::Dev),
            "prod" => Ok(KeyMode::Prod),
            other => Err(TraceError::Key(format!("unsupported key mode: {other}"))),
        }
    }
}

/// Where a signing key comes from (`--key-mode`, `--private-key`, `--private-key-env`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyConfig {
    pub mode: KeyMode,
    pub private_key_path: Option<PathBuf>,
    pub private_key_env: Option<String>,
}

impl KeyConfig {
    fn has_source(&self) -> bool {
        self.private_key_path.is_some() || self.private_key_env.is_some()
    }
}

/// A trace signer: one Ed25519 key and its `key_id`.
///
/// In dev mode the key is generated when the signer is built. The CLI builds one signer per
/// invocation (one evaluation), which matches Go; the long-running proxy builds one per process
/// instead of one per request, which keeps signing cheap (documented deviation).
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    /// The same key in aws-lc's Ed25519, which signs ~2-3x faster than ed25519-dalek on x86_64
    /// (assembly scalar multiplication). Ed25519 is deterministic, so both produce the same bytes
    /// (tested); dalek stays for key handling and verification.
    fast: std::sync::Arc<aws_lc_rs::signature::Ed25519KeyPair>,
    key_id: String,
    ephemeral: bool,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .field("ephemeral", &self.ephemeral)
            .finish_non_exhaustive()
    }
}

/// `key_id` of a public key: hex sha256 of its 32 bytes.
pub fn key_id_of(key: &VerifyingKey) -> String {
    crate::canon::sha256_hex(key.as_bytes())
}

impl Signer {
    /// A fresh ephemeral key (dev mode).
    pub fn generate() -> Signer {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        Self::from_signing_key(key, true)
    }

    fn from_signing_key(key: SigningKey, ephemeral: bool) -> Signer {
        let key_id = key_id_of(&key.verifying_key());
        // aws-lc rejects only a seed of the wrong length, and `to_bytes` is always 32 bytes.
        let fast = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&key.to_bytes())
            .expect("a 32-byte seed is always a valid Ed25519 private key");
        Signer {
            fast: std::sync::Arc::new(fast),
            key,
            key_id,
            ephemeral,
        }
    }

    /// Parse std base64 of the 64-byte private key (seed ‖ public key), whitespace trimmed.
    pub fn from_base64(text: &str) -> Result<Signer, TraceError> {
        let key = parse_private_key(text)?;
        Ok(Self::from_signing_key(key, false))
    }

    /// Build the signer a command asks for (§5.3 key-mode rules).
    pub fn from_config(cfg: &KeyConfig) -> Result<Signer, TraceError> {
        if cfg.private_key_path.is_some() && cfg.private_key_env.is_some() {
            return Err(TraceError::Key(
                "private key source: set either path or env".into(),
            ));
        }
        match cfg.mode {
            KeyMode::Dev => {
                if cfg.has_source() {
                    return Err(TraceError::Key(
                        "dev mode does not accept explicit key sources".into(),
                    ));
                }
                Ok(Self::generate())
            }
            KeyMode::Prod => {
                let text = if let Some(path) = &cfg.private_key_path {
                    read_key_file(path)?
                } else if let Some(var) = &cfg.private_key_env {
                    read_key_env(var)?
                } else {
                    return Err(TraceError::Key(
                        "prod mode requires a private key source".into(),
                    ));
                };
                Self::from_base64(&text)
            }
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// True for a dev-mode ephemeral key (outputs then carry [`DEV_KEY_WARNING`]).
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// std base64 of the 64-byte private key (seed ‖ public).
    pub fn private_key_base64(&self) -> String {
        B64.encode(self.key.to_keypair_bytes())
    }

    /// std base64 of the 32-byte public key.
    pub fn public_key_base64(&self) -> String {
        B64.encode(self.key.verifying_key().as_bytes())
    }

    /// Sign a 32-byte digest and build the envelope.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Signature {
        let sig = self.fast.sign(digest);
        Signature {
            alg: "ed25519".into(),
            key_id: self.key_id.clone(),
            sig: B64.encode(sig.as_ref()),
            signed_digest: hex::encode(digest),
        }
    }

    /// The record, signed, as one compact JSON object: `{"signature":{…},` followed by the
    /// JCS form of the unsigned record. One serialization serves both the digest and the
    /// output (a trace-segment line); the record is not copied. Key order differs from
    /// [`TraceRecord`]'s serde order, which JSON readers ignore; `verify_value` recomputes the
    /// same JCS bytes. `record.signature` must be `None`.
    pub fn signed_line(&self, record: &TraceRecord) -> Result<Vec<u8>, TraceError> {
        unsigned_only(record, "signed_line")?;
        let jcs = crate::intent::jcs::to_vec(record)
            .map_err(|e| TraceError::Invalid(format!("encode trace record: {e}")))?;
        if jcs.len() < 3 || jcs[0] != b'{' {
            return Err(TraceError::Invalid(
                "encode trace record: empty object".into(),
            ));
        }
        let sig = self.sign_digest(&crate::canon::sha256(&jcs));
        let sig = serde_json::to_vec(&sig)
            .map_err(|e| TraceError::Invalid(format!("encode signature: {e}")))?;
        let mut line = Vec::with_capacity(jcs.len() + sig.len() + 16);
        line.extend_from_slice(b"{\"signature\":");
        line.extend_from_slice(&sig);
        line.push(b',');
        line.extend_from_slice(&jcs[1..]);
        Ok(line)
    }

    /// The record, signed, as the indented JSON of a trace file: byte for byte what
    /// `serde_json::to_vec_pretty` gives for the record after [`Signer::sign_record`], without
    /// copying the record. `signature` is the record's last field, so it is appended as the
    /// last member of the unsigned record's pretty form. `record.signature` must be `None`.
    pub fn signed_pretty(&self, record: &TraceRecord) -> Result<Vec<u8>, TraceError> {
        unsigned_only(record, "signed_pretty")?;
        let sig = self.sign_digest(&record_digest(record)?);
        let mut out = serde_json::to_vec_pretty(record)
            .map_err(|e| TraceError::Invalid(format!("encode trace record: {e}")))?;
        let sig = serde_json::to_vec_pretty(&sig)
            .map_err(|e| TraceError::Invalid(format!("encode signature: {e}")))?;
        // `{\n  "k": v,\n  …\n}`: a record with no members (`{}`) cannot be spliced
        if !out.ends_with(b"\n}") {
            return Err(TraceError::Invalid(
                "encode trace record: empty object".into(),
            ));
        }
        out.truncate(out.len() - 2);
        out.reserve(sig.len() + 32);
        out.extend_from_slice(b",\n  \"signature\": ");
        // one level deeper: every line break of the nested object gets two more spaces (a
        // line break inside a JSON string is escaped, so each raw one is formatting)
        for &b in &sig {
            out.push(b);
            if b == b'\n' {
                out.extend_from_slice(b"  ");
            }
        }
        out.extend_from_slice(b"\n}");
        Ok(out)
    }

    /// Set `record.signature` (replacing any existing one).
    pub fn sign_record(&self, record: &mut TraceRecord) -> Result<(), TraceError> {
        record.signature = None;
        let digest = record_digest(record)?;
        record.signature = Some(self.sign_digest(&digest));
        Ok(())
    }
}

/// Refuse a record that already carries a signature: signing it again would cover the old
/// signature too (`signed_line` and `signed_pretty` sign the record as it is).
fn unsigned_only(record: &TraceRecord, what: &str) -> Result<(), TraceError> {
    match record.signature {
        Some(_) => Err(TraceError::Invalid(format!(
            "{what}: the record is already signed"
        ))),
        None => Ok(()),
    }
}

/// `sha256(JCS(record))` of a record whose `signature` is ignored.
///
/// The canonical bytes come straight from the struct ([`crate::intent::jcs`], byte-identical to
/// `canon::to_vec(&serde_json::to_value(record))` without building the `Value` tree).
pub fn record_digest(record: &TraceRecord) -> Result<[u8; 32], TraceError> {
    let encode = |r: &TraceRecord| {
        crate::intent::jcs::to_vec(r)
            .map_err(|e| TraceError::Invalid(format!("encode trace record: {e}")))
    };
    let bytes = if record.signature.is_some() {
        let mut unsigned = record.clone();
        unsigned.signature = None;
        encode(&unsigned)?
    } else {
        encode(record)?
    };
    Ok(crate::canon::sha256(&bytes))
}

fn parse_private_key(text: &str) -> Result<SigningKey, TraceError> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| TraceError::Key(format!("decode private key: {e}")))?;
    let arr: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
        TraceError::Key(format!(
            "invalid private key size: got {} bytes, want 64",
            bytes.len()
        ))
    })?;
    SigningKey::from_keypair_bytes(&arr)
        .map_err(|_| TraceError::Key("private key: public half does not match seed".into()))
}

fn parse_public_key(text: &str) -> Result<VerifyingKey, TraceError> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| TraceError::Key(format!("decode public key: {e}")))?;
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        TraceError::Key(format!(
            "invalid public key size: got {} bytes, want 32",
            bytes.len()
        ))
    })?;
    VerifyingKey::from_bytes(&arr).map_err(|e| TraceError::Key(format!("public key: {e}")))
}

fn read_key_file(path: &Path) -> Result<String, TraceError> {
    let bytes = super::file::read_bounded(path, MAX_KEY_FILE_BYTES)?;
    String::from_utf8(bytes)
        .map_err(|_| TraceError::Key(format!("key file {} is not UTF-8", path.display())))
}

fn read_key_env(var: &str) -> Result<String, TraceError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(TraceError::Key(format!(
            "key env var {var} is empty or unset"
        ))),
    }
}

/// A key source for verification (`gait trace verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyKeySource {
    PublicPath(PathBuf),
    PublicEnv(String),
    PrivatePath(PathBuf),
    PrivateEnv(String),
}

impl VerifyKeySource {
    /// Load the public key this source designates.
    pub fn load(&self) -> Result<VerifyingKey, TraceError> {
        match self {
            VerifyKeySource::PublicPath(p) => parse_public_key(&read_key_file(p)?),
            VerifyKeySource::PublicEnv(v) => parse_public_key(&read_key_env(v)?),
            VerifyKeySource::PrivatePath(p) => {
                Ok(parse_private_key(&read_key_file(p)?)?.verifying_key())
            }
            VerifyKeySource::PrivateEnv(v) => {
                Ok(parse_private_key(&read_key_env(v)?)?.verifying_key())
            }
        }
    }
}

/// Verify the signature of a parsed trace object (§5.3). `Err(Verify)` means the trace is
/// unsigned, tampered with or signed by another key.
pub fn verify_value(value: &Value, key: &VerifyingKey) -> Result<(), TraceError> {
    let fail = |m: &str| Err(TraceError::Verify(m.to_string()));
    let Value::Object(map) = value else {
        return fail("trace record must be a JSON object");
    };
    let Some(sig_value) = map.get("signature") else {
        return fail("trace record is not signed");
    };
    let sig: Signature = serde_json::from_value(sig_value.clone())
        .map_err(|e| TraceError::Verify(format!("decode signature: {e}")))?;
    if !sig.alg.eq_ignore_ascii_case("ed25519") {
        return fail("unsupported signature alg");
    }
    if !sig.key_id.is_empty() && sig.key_id != key_id_of(key) {
        return fail("signature key_id does not match verify key");
    }
    let mut unsigned = map.clone();
    unsigned.remove("signature");
    let digest = crate::canon::sha256(&crate::canon::to_vec(&Value::Object(unsigned)));
    if !sig.signed_digest.is_empty()
        && !sig.signed_digest.eq_ignore_ascii_case(&hex::encode(digest))
    {
        return fail("signed digest mismatch");
    }
    let raw = B64
        .decode(sig.sig.trim())
        .map_err(|_| TraceError::Verify("signature is not base64".into()))?;
    let raw: [u8; 64] = raw
        .as_slice()
        .try_into()
        .map_err(|_| TraceError::Verify("signature must be 64 bytes".into()))?;
    key.verify(&digest, &ed25519_dalek::Signature::from_bytes(&raw))
        .map_err(|_| TraceError::Verify("signature verification failed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::GoTime;
    use ed25519_dalek::Signer as _;

    fn record() -> TraceRecord {
        TraceRecord {
            schema_id: "gait.gate.trace".into(),
            schema_version: "1.0.0".into(),
            created_at: GoTime::epoch_1980(),
            producer_version: "0.1.0".into(),
            trace_id: "t1".into(),
            tool_name: "tool.read".into(),
            args_digest: "a".repeat(64),
            intent_digest: "b".repeat(64),
            policy_digest: "c".repeat(64),
            verdict: "allow".into(),
            ..TraceRecord::default()
        }
    }

    #[test]
    fn sign_then_verify_and_detect_tamper() {
        let s = Signer::generate();
        let mut r = record();
        s.sign_record(&mut r).unwrap();
        let sig = r.signature.clone().unwrap();
        assert_eq!(sig.alg, "ed25519");
        assert_eq!(sig.key_id, s.key_id());
        assert_eq!(sig.signed_digest.len(), 64);
        let v = serde_json::to_value(&r).unwrap();
        verify_value(&v, &s.verifying_key()).unwrap();

        let mut tampered = v.clone();
        tampered["verdict"] = "block".into();
        assert!(matches!(
            verify_value(&tampered, &s.verifying_key()),
            Err(TraceError::Verify(_))
        ));
        let other = Signer::generate();
        assert!(verify_value(&v, &other.verifying_key()).is_err());
    }

    #[test]
    fn unknown_fields_are_covered_by_the_signature() {
        // A producer with more fields (Go, a later gait) signs JCS of everything it wrote.
        let s = Signer::generate();
        let mut v = serde_json::to_value(record()).unwrap();
        v["future_field"] = serde_json::json!({"b": [1, 2.5], "a": "x"});
        let digest = crate::canon::sha256(&crate::canon::to_vec(&v));
        v["signature"] = serde_json::to_value(s.sign_digest(&digest)).unwrap();
        verify_value(&v, &s.verifying_key()).unwrap();
        v["future_field"]["a"] = "y".into();
        assert!(verify_value(&v, &s.verifying_key()).is_err());
    }

    #[test]
    fn direct_jcs_digest_equals_the_value_path() {
        let s = Signer::generate();
        let mut r = record();
        r.latency_ms = 0.125;
        r.matched_rule_ids = vec!["b".into(), "a\u{e9}".into()];
        r.violations = vec!["\u{1f600} x".into()];
        let mut v = serde_json::to_value(&r).unwrap();
        let want = crate::canon::sha256(&crate::canon::to_vec(&v));
        assert_eq!(record_digest(&r).unwrap(), want);
        // a signed record: the signature is not covered
        s.sign_record(&mut r).unwrap();
        assert_eq!(record_digest(&r).unwrap(), want);
        v["signature"] = serde_json::to_value(r.signature.clone()).unwrap();
        verify_value(&v, &s.verifying_key()).unwrap();
    }

    #[test]
    fn signed_line_is_the_signed_record_in_one_serialization() {
        let s = Signer::generate();
        let r = record();
        let line = s.signed_line(&r).unwrap();
        let v: Value = serde_json::from_slice(&line).unwrap();
        verify_value(&v, &s.verifying_key()).unwrap();
        // same fields and signature as the trace-file path
        let mut signed = r.clone();
        s.sign_record(&mut signed).unwrap();
        assert_eq!(v, serde_json::to_value(&signed).unwrap());
        // tampering is caught
        let mut t = v.clone();
        t["verdict"] = "block".into();
        assert!(verify_value(&t, &s.verifying_key()).is_err());
        // an already signed record is refused (its signature would be covered twice)
        assert!(s.signed_line(&signed).is_err());
    }

    #[test]
    fn signed_pretty_is_byte_identical_to_signing_a_copy() {
        let s = Signer::generate();
        let mut full = record();
        // nested members (relationship edges, a policy ref), so the indentation is exercised
        full.relationship = Some(crate::trace::Relationship::for_decision(
            &crate::trace::RelationshipInput {
                session_id: "s1",
                identity: "agent-1",
                tool_name: "tool.read",
                trace_id: "t1",
                policy_id: "gait.gate.policy",
                policy_version: "1.0.0",
                policy_digest: &"c".repeat(64),
                matched_rule_ids: &["r1".to_string()],
                delegation_hops: &[],
                delegation_requester: "",
            },
        ));
        full.matched_rule_ids = vec!["r1".into()];
        full.tool_name = "tool.read\nline \"quoted\"".into();
        for r in [record(), full] {
            let ours = s.signed_pretty(&r).unwrap();
            let mut signed = r.clone();
            s.sign_record(&mut signed).unwrap();
            assert_eq!(
                String::from_utf8(ours.clone()).unwrap(),
                String::from_utf8(serde_json::to_vec_pretty(&signed).unwrap()).unwrap()
            );
            let v: Value = serde_json::from_slice(&ours).unwrap();
            verify_value(&v, &s.verifying_key()).unwrap();
            assert!(s.signed_pretty(&signed).is_err());
        }
    }

    #[test]
    fn fast_signer_matches_dalek_byte_for_byte() {
        // Ed25519 is deterministic: the aws-lc signature must equal dalek's for every key/digest.
        for i in 0u8..16 {
            let key = SigningKey::from_bytes(&[i.wrapping_mul(37).wrapping_add(1); 32]);
            let signer = Signer::from_signing_key(key.clone(), false);
            let digest = crate::canon::sha256(&[i; 40]);
            let ours = B64.decode(signer.sign_digest(&digest).sig).unwrap();
            assert_eq!(ours, key.sign(&digest).to_bytes().to_vec(), "key {i}");
        }
    }

    #[test]
    fn signature_is_over_raw_digest_bytes() {
        let s = Signer::generate();
        let mut r = record();
        s.sign_record(&mut r).unwrap();
        let sig = r.signature.clone().unwrap();
        let digest = record_digest(&r).unwrap();
        assert_eq!(sig.signed_digest, hex::encode(digest));
        let raw: [u8; 64] = B64.decode(&sig.sig).unwrap().try_into().unwrap();
        s.verifying_key()
            .verify_strict(&digest, &ed25519_dalek::Signature::from_bytes(&raw))
            .unwrap();
    }

    #[test]
    fn key_modes() {
        let dev = Signer::from_config(&KeyConfig::default()).unwrap();
        assert!(dev.is_ephemeral());
        let err = Signer::from_config(&KeyConfig {
            mode: KeyMode::Dev,
            private_key_env: Some("X".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "dev mode does not accept explicit key sources"
        );
        let err = Signer::from_config(&KeyConfig {
            mode: KeyMode::Prod,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "prod mode requires a private key source");
        let err = Signer::from_config(&KeyConfig {
            mode: KeyMode::Prod,
            private_key_path: Some("a".into()),
            private_key_env: Some("B".into()),
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "private key source: set either path or env"
        );
        assert!("weird".parse::<KeyMode>().is_err());
    }

    #[test]
    fn private_key_roundtrip_through_base64() {
        let s = Signer::generate();
        let text = format!("  {}\n", s.private_key_base64());
        let back = Signer::from_base64(&text).unwrap();
        assert_eq!(back.key_id(), s.key_id());
        assert!(!back.is_ephemeral());
        assert_eq!(
            parse_public_key(&s.public_key_base64()).unwrap(),
            s.verifying_key()
        );
        assert!(Signer::from_base64("not base64!").is_err());
        assert!(Signer::from_base64(&B64.encode([0u8; 32])).is_err());
    }
}
