//! The real gate engine behind the server's [`Decide`] interface.
//!
//! One [`crate::trace::Signer`] is built per process (in dev key mode that is one ephemeral key
//! per process, not per request as in Go) and shared by every reloaded engine, so a policy
//! reload never changes the trace key. The record is signed on the trace-writer thread, not on
//! the request path ([`DeferredSigned`]). Invariant: `decide` does no file I/O except what the
//! engine itself documents (kill-switch state and trust snapshot, when configured).

use super::ServeError;
use super::config::{KeyMode, ServeConfig};
use super::decide::{Decide, DecideError, DecideRequest, Decision, Loader, RecordBody};
use crate::gate::{CallOptions, Engine, EngineConfig};
use crate::intent::Adapter;
use crate::policy::Policy;
use crate::trace::{KeyConfig, Signer, TraceRecord};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;

/// A compiled policy + signer.
pub struct EngineDecider {
    engine: Engine,
    signer: Arc<Signer>,
}

/// A trace record signed when it is serialized (on the writer thread).
#[derive(Debug)]
pub struct DeferredSigned {
    record: TraceRecord,
    signer: Arc<Signer>,
}

impl RecordBody for DeferredSigned {
    fn to_json(&self, pretty: bool) -> serde_json::Result<Vec<u8>> {
        use serde::ser::Error as _;
        // one serialization each, no copy of the record (the common case: the writer signs)
        if self.record.signature.is_none() {
            let out = if pretty {
                self.signer.signed_pretty(&self.record)
            } else {
                self.signer.signed_line(&self.record)
            };
            return out.map_err(|e| serde_json::Error::custom(e.to_string()));
        }
        let mut r = self.record.clone();
        self.signer
            .sign_record(&mut r)
            .map_err(|e| serde_json::Error::custom(e.to_string()))?;
        if pretty {
            serde_json::to_vec_pretty(&r)
        } else {
            serde_json::to_vec(&r)
        }
    }

    fn with_verdict(&self, verdict: crate::verdict::Verdict) -> Option<Arc<dyn RecordBody>> {
        let mut record = self.record.clone();
        record.verdict = verdict.as_str().to_string();
        Some(Arc::new(DeferredSigned {
            record,
            signer: self.signer.clone(),
        }))
    }
}

impl std::fmt::Debug for EngineDecider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineDecider")
            .field("policy_digest", &self.engine.policy().digest())
            .finish()
    }
}

impl Decide for EngineDecider {
    fn decide(&self, req: &DecideRequest<'_>) -> Result<Decision, DecideError> {
        let adapter: Adapter = req
            .adapter
            .parse()
            .map_err(|e: crate::intent::IntentError| DecideError(e.to_string()))?;
        let opts = CallOptions {
            run_id: req
                .run_id
                .filter(|r| !r.trim().is_empty())
                .map(str::to_string),
            // signed once, on the writer thread ([`DeferredSigned`]); signing here as well
            // cost a second Ed25519 signature per call on a tokio worker
            sign: false,
            // the output map (the only reader of the decision's relationship) is built only
            // for the evaluate API
            lean_output: !req.output,
            ..CallOptions::default()
        };
        let d = self
            .engine
            .evaluate_call(adapter, req.payload, &opts)
            .map_err(|e| DecideError(e.to_string()))?;
        // The output map is only rendered by the evaluate API; the proxy path skips building it.
        let mut output = Map::new();
        if req.output {
            if let Ok(Value::Object(m)) = serde_json::to_value(&d.output) {
                output = m;
            }
            if self.signer.is_ephemeral() {
                // The engine adds this warning only when it signs itself.
                let mut w = vec![Value::String(crate::trace::DEV_KEY_WARNING.to_string())];
                if let Some(Value::Array(rest)) = output.remove("warnings") {
                    w.extend(rest);
                }
                output.insert("warnings".into(), Value::Array(w));
            }
        }
        let o = d.output;
        Ok(Decision {
            verdict: o.verdict,
            reason_codes: o.reason_codes,
            violations: o.violations,
            trace_id: o.trace_id,
            policy_digest: o.policy_digest,
            intent_digest: o.intent_digest,
            tool_name: o.tool_name,
            run_id: o.run_id,
            session_id: (!o.session_id.is_empty()).then_some(o.session_id),
            output,
            rate_limit: d.rate_limit.as_ref().and_then(rate_spec),
            retry_after: None,
            trace: Some(Arc::new(DeferredSigned {
                record: d.trace,
                signer: self.signer.clone(),
            })),
        })
    }

    fn could_allow_tool(&self, name: &str) -> bool {
        self.engine.policy().could_allow_tool(name)
    }

    fn policy_digest(&self) -> &str {
        self.engine.policy().digest()
    }
}

/// The policy's `rate_limit` as a limiter spec (`requests: 0` means no limit, as in Go).
fn rate_spec(r: &crate::policy::RateLimitSpec) -> Option<crate::ops::ratelimit::RateSpec> {
    Some(crate::ops::ratelimit::RateSpec {
        requests: std::num::NonZeroU32::new(r.requests)?,
        window: match r.window.as_str() {
            "hour" => crate::ops::config::Window::Hour,
            _ => crate::ops::config::Window::Minute,
        },
        scope: r.scope.parse().ok()?,
    })
}

/// The policy loader used by `gait mcp serve`: `Policy::load` + `Engine::with_signer`.
pub fn loader(cfg: &ServeConfig) -> Result<Loader, ServeError> {
    let keys = KeyConfig {
        mode: match cfg.key_mode {
            KeyMode::Dev => crate::trace::KeyMode::Dev,
            KeyMode::Prod => crate::trace::KeyMode::Prod,
        },
        private_key_path: cfg.private_key.clone(),
        private_key_env: cfg.private_key_env.clone(),
    };
    let signer =
        Arc::new(Signer::from_config(&keys).map_err(|e| ServeError::Policy(e.to_string()))?);
    let ecfg = EngineConfig {
        profile: cfg.profile,
        keys,
        kill_switch_state: cfg.kill_switch_state.clone(),
        job_root: cfg.job_root.clone(),
        ..EngineConfig::default()
    };
    Ok(Arc::new(move |p: &Path| {
        let policy = Policy::load(p).map_err(|e| e.to_string())?;
        let engine = Engine::with_signer(Arc::new(policy), ecfg.clone(), (*signer).clone())
            .map_err(|e| e.to_string())?;
        Ok(Box::new(EngineDecider {
            engine,
            signer: signer.clone(),
        }) as Box<dyn Decide>)
    }))
}
