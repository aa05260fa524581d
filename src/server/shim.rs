//! A private stand-in gate engine used until the real `crate::gate` engine is wired in.
//!
//! It understands the policy subset a proxy needs to be exercised end to end:
//! `default_verdict` and `rules[{name, priority, effect, match{tool_name, tool_names,
//! identities, risk_classes}, reason_codes, violations}]`, with the Go tier semantics (first
//! matching priority tier, most restrictive effect wins, `default_<verdict>` otherwise). It signs
//! a minimal TraceRecord with an ephemeral Ed25519 key (dev key mode). Its `policy_digest` is
//! the JCS digest of the parsed YAML, which is NOT the Go-compatible digest.
//!
//! Invariant: no I/O after `load`.

use super::decide::{Decide, DecideError, DecideRequest, Decision};
use crate::verdict::Verdict;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Map, Value, json};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug)]
struct Rule {
    name: String,
    priority: i64,
    effect: Verdict,
    tools: Vec<String>,
    identities: Vec<String>,
    risk_classes: Vec<String>,
    reason_codes: Vec<String>,
    violations: Vec<String>,
}

/// The stand-in engine.
pub struct ShimEngine {
    default_verdict: Verdict,
    rules: Vec<Rule>,
    digest: String,
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for ShimEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShimEngine")
            .field("digest", &self.digest)
            .finish()
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(|s| s.trim().to_string()))
            .collect(),
        Some(Value::String(s)) => vec![s.trim().to_string()],
        _ => Vec::new(),
    }
}

impl ShimEngine {
    /// Read and compile a policy file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("read policy {}: {e}", path.display()))?;
        Self::from_yaml(&text)
    }

    /// Compile a policy from YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let doc: Value =
            serde_saphyr::from_str(text).map_err(|e| format!("parse policy yaml: {e}"))?;
        let obj = doc.as_object().cloned().unwrap_or_default();
        let default_verdict = match obj.get("default_verdict").or(obj.get("default_action")) {
            None => Verdict::RequireApproval,
            Some(v) => v
                .as_str()
                .unwrap_or("")
                .parse()
                .map_err(|e| format!("invalid default_verdict {e:?}"))?,
        };
        let mut rules = Vec::new();
        for r in obj
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let name = r
                .get("name")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or("")
                .to_string();
            if name.is_empty() {
                return Err("rule name is required".into());
            }
            let effect_s = r
                .get("effect")
                .or(r.get("action"))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("rule effect is required for {name}"))?;
            let effect = effect_s
                .parse()
                .map_err(|_| format!("invalid rule effect {effect_s:?} for {name}"))?;
            let m = r.get("match").cloned().unwrap_or(Value::Null);
            let mut tools = strings(m.get("tool_names"));
            tools.extend(strings(m.get("tool_name")));
            for t in &mut tools {
                *t = t.to_ascii_lowercase();
            }
            let mut reason_codes = strings(r.get("reason_codes"));
            reason_codes.sort();
            reason_codes.dedup();
            let mut violations = strings(r.get("violations"));
            violations.sort();
            violations.dedup();
            rules.push(Rule {
                priority: r.get("priority").and_then(Value::as_i64).unwrap_or(0),
                effect,
                tools,
                identities: strings(m.get("identities")),
                risk_classes: strings(m.get("risk_classes"))
                    .into_iter()
                    .map(|s| s.to_ascii_lowercase())
                    .collect(),
                reason_codes,
                violations,
                name,
            });
        }
        rules.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let key_id = crate::canon::sha256_hex(key.verifying_key().as_bytes());
        Ok(ShimEngine {
            default_verdict,
            rules,
            digest: crate::canon::digest(&doc),
            key,
            key_id,
        })
    }

    fn sign(&self, mut record: Map<String, Value>) -> Value {
        let digest_hex = crate::canon::digest(&Value::Object(record.clone()));
        let digest = hex::decode(&digest_hex).unwrap_or_default();
        let sig = self.key.sign(&digest);
        record.insert(
            "signature".into(),
            json!({
                "alg": "ed25519",
                "key_id": self.key_id,
                "sig": base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
                "signed_digest": digest_hex,
            }),
        );
        Value::Object(record)
    }
}

/// (tool name, args, context) extracted from a payload by adapter.
fn extract(adapter: &str, p: &Value) -> Result<(String, Value, Map<String, Value>), DecideError> {
    let obj = p
        .as_object()
        .ok_or_else(|| DecideError("call must be a JSON object".into()))?;
    let (name, args) = match adapter {
        "" | "mcp" => (obj.get("name"), obj.get("args").or(obj.get("arguments"))),
        "openai" => {
            let f = obj.get("function").unwrap_or(&Value::Null);
            (f.get("name"), f.get("arguments"))
        }
        "anthropic" => (obj.get("name"), obj.get("input")),
        "langchain" => (obj.get("tool"), obj.get("tool_input")),
        "claude_code" | "claude-code" | "claudecode" => (
            obj.get("tool_name").or(obj.get("name")),
            obj.get("tool_input").or(obj.get("input")),
        ),
        other => return Err(DecideError(format!("unsupported adapter: {other}"))),
    };
    let name = name
        .and_then(Value::as_str)
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if name.is_empty() {
        return Err(DecideError("tool_name is required".into()));
    }
    let args = match args {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|e| DecideError(format!("decode arguments: {e}")))?
        }
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(DecideError("args must be an object".into())),
    };
    if !args.is_object() {
        return Err(DecideError("args must be an object".into()));
    }
    let ctx = obj
        .get("context")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok((name, args, ctx))
}

fn ctx_str<'a>(ctx: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    ctx.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl Decide for ShimEngine {
    fn decide(&self, req: &DecideRequest<'_>) -> Result<Decision, DecideError> {
        let (tool, args, ctx) = extract(req.adapter, req.payload)?;
        let identity = ctx_str(&ctx, "identity").unwrap_or("mcp-proxy").to_string();
        let workspace = ctx_str(&ctx, "workspace").unwrap_or(".").to_string();
        let risk = ctx_str(&ctx, "risk_class")
            .unwrap_or("high")
            .to_ascii_lowercase();
        let session_id = ctx_str(&ctx, "session_id").map(str::to_string);
        let mut tier: Option<i64> = None;
        let mut matched: Vec<&Rule> = Vec::new();
        for r in &self.rules {
            if tier.is_some_and(|p| p != r.priority) {
                break;
            }
            let ok = (r.tools.is_empty() || r.tools.contains(&tool))
                && (r.identities.is_empty() || r.identities.contains(&identity))
                && (r.risk_classes.is_empty() || r.risk_classes.contains(&risk));
            if ok {
                tier = Some(r.priority);
                matched.push(r);
            }
        }
        let (verdict, mut reasons, mut violations) = if matched.is_empty() {
            (
                self.default_verdict,
                vec![format!("default_{}", self.default_verdict)],
                Vec::new(),
            )
        } else {
            let v = matched
                .iter()
                .map(|r| r.effect)
                .max()
                .unwrap_or(Verdict::Block);
            let mut reasons = Vec::new();
            let mut viol = Vec::new();
            for r in matched.iter().filter(|r| r.effect == v) {
                if r.reason_codes.is_empty() {
                    reasons.push(format!(
                        "matched_rule_{}",
                        r.name.to_ascii_lowercase().replace([' ', '-'], "_")
                    ));
                } else {
                    reasons.extend(r.reason_codes.iter().cloned());
                }
                viol.extend(r.violations.iter().cloned());
            }
            (v, reasons, viol)
        };
        reasons.sort();
        reasons.dedup();
        violations.sort();
        violations.dedup();
        let mut ictx = Map::new();
        ictx.insert("identity".into(), identity.clone().into());
        ictx.insert("phase".into(), "apply".into());
        ictx.insert("risk_class".into(), risk.into());
        ictx.insert("workspace".into(), workspace.into());
        if let Some(s) = &session_id {
            ictx.insert("session_id".into(), s.clone().into());
        }
        let intent = json!({"args": args, "context": ictx, "targets": [], "tool_name": tool});
        let intent_digest = crate::canon::digest(&intent);
        let args_digest = crate::canon::digest(&args);
        let pre = format!("{}:{}:{}", self.digest, intent_digest, verdict.as_str());
        let trace_id = crate::canon::sha256_hex(pre.as_bytes())[..24].to_string();
        let observed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let event_id = crate::canon::sha256_hex(format!("{trace_id}:{observed_at}").as_bytes())
            [..24]
            .to_string();
        let run_id = match req.run_id.filter(|r| !r.trim().is_empty()) {
            Some(r) => r.to_string(),
            None => format!("run_mcp_{}", &intent_digest[..12]),
        };
        let mut rec = Map::new();
        rec.insert("schema_id".into(), "gait.gate.trace".into());
        rec.insert("schema_version".into(), "1.0.0".into());
        rec.insert("created_at".into(), "1980-01-01T00:00:00Z".into());
        rec.insert("observed_at".into(), observed_at.into());
        rec.insert("producer_version".into(), crate::VERSION.into());
        rec.insert("trace_id".into(), trace_id.clone().into());
        rec.insert("event_id".into(), event_id.into());
        rec.insert("tool_name".into(), tool.clone().into());
        rec.insert("args_digest".into(), args_digest.into());
        rec.insert("intent_digest".into(), intent_digest.clone().into());
        rec.insert("policy_digest".into(), self.digest.clone().into());
        rec.insert("policy_id".into(), "gait.gate.policy".into());
        rec.insert("policy_version".into(), "1.0.0".into());
        rec.insert("verdict".into(), verdict.as_str().into());
        if !violations.is_empty() {
            rec.insert("violations".into(), json!(violations));
        }
        let trace = self.sign(rec);
        let mut out = Map::new();
        out.insert("ok".into(), true.into());
        out.insert("executed".into(), false.into());
        out.insert(
            "adapter".into(),
            if req.adapter.is_empty() {
                "mcp"
            } else {
                req.adapter
            }
            .into(),
        );
        out.insert("run_id".into(), run_id.clone().into());
        out.insert("phase".into(), "apply".into());
        if let Some(s) = &session_id {
            out.insert("session_id".into(), s.clone().into());
        }
        out.insert("tool_name".into(), tool.clone().into());
        out.insert("verdict".into(), verdict.as_str().into());
        if !reasons.is_empty() {
            out.insert("reason_codes".into(), json!(reasons));
        }
        if !violations.is_empty() {
            out.insert("violations".into(), json!(violations));
        }
        out.insert("policy_digest".into(), self.digest.clone().into());
        out.insert("policy_id".into(), "gait.gate.policy".into());
        out.insert("policy_version".into(), "1.0.0".into());
        out.insert("intent_digest".into(), intent_digest.clone().into());
        out.insert("trace_id".into(), trace_id.clone().into());
        Ok(Decision {
            verdict,
            reason_codes: reasons,
            violations,
            trace_id,
            policy_digest: self.digest.clone(),
            intent_digest,
            tool_name: tool,
            run_id,
            session_id,
            output: out,
            rate_limit: None,
            retry_after: None,
            trace: Some(Arc::new(trace)),
        })
    }

    fn could_allow_tool(&self, name: &str) -> bool {
        let name = name.trim().to_ascii_lowercase();
        let mut i = 0;
        while i < self.rules.len() {
            let p = self.rules[i].priority;
            let tier: Vec<&Rule> = self.rules[i..]
                .iter()
                .take_while(|r| r.priority == p)
                .collect();
            i += tier.len();
            let cands: Vec<&&Rule> = tier
                .iter()
                .filter(|r| r.tools.is_empty() || r.tools.contains(&name))
                .collect();
            if cands.is_empty() {
                continue;
            }
            if cands.iter().any(|r| r.effect != Verdict::Block) {
                return true;
            }
            if cands
                .iter()
                .any(|r| r.identities.is_empty() && r.risk_classes.is_empty())
            {
                return false;
            }
        }
        self.default_verdict != Verdict::Block
    }

    fn policy_digest(&self) -> &str {
        &self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "default_verdict: allow\nrules:\n  - name: block-delete\n    priority: 10\n    effect: block\n    match: {tool_names: [tool.delete]}\n    reason_codes: [destructive_tool_blocked]\n  - name: approve-write\n    priority: 20\n    effect: require_approval\n    match: {tool_name: tool.write}\n";

    fn decide(e: &ShimEngine, p: Value) -> Decision {
        e.decide(&DecideRequest {
            adapter: "mcp",
            payload: &p,
            run_id: None,
            output: true,
        })
        .unwrap()
    }

    #[test]
    fn tiers_and_defaults() {
        let e = ShimEngine::from_yaml(POLICY).unwrap();
        let d = decide(&e, json!({"name": "tool.delete", "args": {}}));
        assert_eq!(d.verdict, Verdict::Block);
        assert_eq!(d.reason_codes, vec!["destructive_tool_blocked"]);
        let d = decide(&e, json!({"name": "Tool.Write", "args": {"a": 1}}));
        assert_eq!(d.verdict, Verdict::RequireApproval);
        assert_eq!(d.reason_codes, vec!["matched_rule_approve_write"]);
        let d = decide(&e, json!({"name": "tool.read"}));
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.reason_codes, vec!["default_allow"]);
        assert_eq!(d.trace_id.len(), 24);
        let t = d.trace.unwrap().to_pretty_json().unwrap();
        let t: Value = serde_json::from_slice(&t).unwrap();
        assert!(t.get("signature").is_some());
        assert!(!e.could_allow_tool("tool.delete"));
        assert!(e.could_allow_tool("tool.read"));
        assert!(
            e.decide(&DecideRequest {
                adapter: "mcp",
                payload: &json!({"args": {}}),
                run_id: None,
                output: true,
            })
            .is_err()
        );
        assert!(ShimEngine::from_yaml("rules: [{effect: allow}]").is_err());
    }
}
