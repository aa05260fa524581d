//! Intent normalisation (gate.md §3.2): the input to the digests and to policy matching.
//!
//! Invariant: `normalize` is a pure function that never panics; it either returns an intent
//! whose strings are trimmed, whose enums are lowercased and validated, whose lists are
//! deduplicated and sorted, and whose digests match Go's for the same input, or an
//! [`IntentError`] with a one-line message that never repeats a rejected secret.

use super::digest;
use super::error::{IntentError, echo};
use super::types::{
    AgentIdentity, ArgProvenance, Delegation, DelegationLink, GoTime, INTENT_SCHEMA_ID,
    INTENT_SCHEMA_VERSION, IntentContext, IntentRequest, JsonMap, Sandbox, Script, ScriptStep,
    SkillProvenance, Target,
};
use serde_json::Value;
use std::cmp::Ordering;

/// Maximum number of `script.steps`.
pub const MAX_SCRIPT_STEPS: usize = 64;

/// Deepest JSON nesting accepted in `args` / `auth_context` (serde_json's parser stops at 128).
const MAX_JSON_DEPTH: usize = 512;

pub const TARGET_KINDS: &[&str] = &[
    "path", "url", "host", "repo", "bucket", "table", "queue", "topic", "other",
];
pub const ENDPOINT_CLASSES: &[&str] = &[
    "fs.read",
    "fs.write",
    "fs.delete",
    "proc.exec",
    "net.http",
    "net.dns",
    "ui.click",
    "ui.type",
    "ui.navigate",
    "other",
];
pub const DISCOVERY_METHODS: &[&str] = &[
    "webmcp",
    "dynamic_mcp",
    "a2a",
    "mcp",
    "static_mcp",
    "manual",
    "unknown",
];
pub const PROVENANCE_SOURCES: &[&str] = &["user", "tool_output", "external", "system"];
pub const CREDENTIAL_SOURCES: &[&str] = &[
    "aws_iam_user",
    "aws_sts",
    "azure_federated",
    "command",
    "env",
    "gcp_sts",
    "github_oidc",
    "github_pat",
    "kubernetes_service_account",
    "stub",
    "unknown",
    "vault_dynamic",
];
pub const CREDENTIAL_ACCESS_TYPES: &[&str] = &[
    "cloud_admin",
    "inherited",
    "jit",
    "standing",
    "static",
    "unknown",
];
const SANDBOX_NETWORK_MODES: &[&str] = &["disabled", "egress_allowlist", "full"];
const SANDBOX_ENV_EXPOSURE_MODES: &[&str] = &["allowlist", "full", "none"];
const SANDBOX_FILESYSTEM_ISOLATIONS: &[&str] = &["container", "none", "workspace"];
const SANDBOX_USER_MODES: &[&str] = &["default", "root", "unprivileged"];

/// A normalised intent plus its precomputed digests.
///
/// Built only by [`normalize`], so the digests always belong to the request it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedIntent {
    request: IntentRequest,
    intent_digest: String,
    args_digest: String,
    script_hash: Option<String>,
    any_destructive: bool,
}

impl NormalizedIntent {
    /// The normalised request (`args_digest`, `intent_digest`, `script_hash` filled in,
    /// `schema_id`/`schema_version` defaulted). This is what Go's `NormalizeIntent` returns.
    pub fn request(&self) -> &IntentRequest {
        &self.request
    }

    pub fn into_request(self) -> IntentRequest {
        self.request
    }

    /// `intent_digest` (64 lowercase hex).
    pub fn intent_digest(&self) -> &str {
        &self.intent_digest
    }

    /// `args_digest` (64 lowercase hex).
    pub fn args_digest(&self) -> &str {
        &self.args_digest
    }

    /// `script_hash` for script intents.
    pub fn script_hash(&self) -> Option<&str> {
        self.script_hash.as_deref()
    }

    /// Lowercased, trimmed tool name (`script` for script intents).
    pub fn tool_name(&self) -> &str {
        &self.request.tool_name
    }

    pub fn args(&self) -> &JsonMap {
        &self.request.args
    }

    /// Lowercased `context.risk_class`.
    pub fn risk_class(&self) -> &str {
        &self.request.context.risk_class
    }

    /// `plan` or `apply`.
    pub fn phase(&self) -> &str {
        &self.request.context.phase
    }

    pub fn identity(&self) -> &str {
        &self.request.context.identity
    }

    pub fn workspace(&self) -> &str {
        &self.request.context.workspace
    }

    pub fn context(&self) -> &IntentContext {
        &self.request.context
    }

    /// Sorted, deduplicated targets (for scripts with no top-level targets: the union of the
    /// step targets).
    pub fn targets(&self) -> &[Target] {
        &self.request.targets
    }

    pub fn arg_provenance(&self) -> &[ArgProvenance] {
        &self.request.arg_provenance
    }

    pub fn skill_provenance(&self) -> Option<&SkillProvenance> {
        self.request.skill_provenance.as_ref()
    }

    pub fn delegation(&self) -> Option<&Delegation> {
        self.request.delegation.as_ref()
    }

    pub fn is_script(&self) -> bool {
        self.request.script.is_some()
    }

    /// Normalised script steps (empty for single calls).
    pub fn script_steps(&self) -> &[ScriptStep] {
        self.request
            .script
            .as_ref()
            .map(|s| s.steps.as_slice())
            .unwrap_or(&[])
    }

    /// True if any target is destructive.
    pub fn has_destructive_target(&self) -> bool {
        self.any_destructive
    }

    /// The single-call request Go evaluates for script step `index`: this intent with the
    /// script and script hash removed and the step's tool name, args, targets and provenance.
    pub fn step_request(&self, index: usize) -> Option<IntentRequest> {
        let step = self.script_steps().get(index)?;
        let mut req = self.request.clone();
        req.script = None;
        req.script_hash.clear();
        req.args_digest.clear();
        req.intent_digest.clear();
        req.tool_name = step.tool_name.clone();
        req.args = step.args.clone();
        req.targets = step.targets.clone();
        req.arg_provenance = step.arg_provenance.clone();
        Some(req)
    }

    /// Every script step as its own normalised single-call intent (empty for single calls).
    pub fn step_intents(&self) -> Result<Vec<NormalizedIntent>, IntentError> {
        (0..self.script_steps().len())
            .filter_map(|i| self.step_request(i))
            .map(|r| normalize(&r))
            .collect()
    }
}

/// Normalise `req` (gate.md §3.2) and compute its digests (§4.1–4.3).
pub fn normalize(req: &IntentRequest) -> Result<NormalizedIntent, IntentError> {
    let parts = normalize_parts(req)?;
    let (args_digest, intent_digest) = digest::digests_of_parts(&parts)?;

    let any_destructive = parts.targets.iter().any(|t| t.destructive);
    let script_hash = parts.script_hash.clone();
    let out = IntentRequest {
        schema_id: if req.schema_id.is_empty() {
            INTENT_SCHEMA_ID.to_string()
        } else {
            req.schema_id.clone()
        },
        schema_version: if req.schema_version.is_empty() {
            INTENT_SCHEMA_VERSION.to_string()
        } else {
            req.schema_version.clone()
        },
        created_at: req.created_at,
        producer_version: req.producer_version.clone(),
        tool_name: parts.tool_name,
        args: parts.args,
        args_digest: args_digest.clone(),
        intent_digest: intent_digest.clone(),
        script_hash: parts.script_hash.unwrap_or_default(),
        script: parts.script,
        targets: parts.targets,
        arg_provenance: parts.arg_provenance,
        skill_provenance: parts.skill_provenance,
        delegation: parts.delegation,
        relationship: req.relationship.clone(),
        context: parts.context,
    };
    Ok(NormalizedIntent {
        request: out,
        intent_digest,
        args_digest,
        script_hash,
        any_destructive,
    })
}

/// Remove the context-evidence claims a caller cannot prove without a verified envelope
/// (gate.md §2 step 2): `context_set_digest`, `context_evidence_mode`, `context_refs` and
/// `auth_context.context_age_seconds`.
pub fn strip_unverified_context_claims(req: &mut IntentRequest) {
    let ctx = &mut req.context;
    ctx.context_set_digest.clear();
    ctx.context_evidence_mode.clear();
    ctx.context_refs.clear();
    ctx.auth_context.remove("context_age_seconds");
}

/// The normalised pieces that make up the intent digest preimage.
pub(crate) struct Parts {
    pub tool_name: String,
    pub args: JsonMap,
    pub script_hash: Option<String>,
    pub script: Option<Script>,
    pub targets: Vec<Target>,
    pub arg_provenance: Vec<ArgProvenance>,
    pub skill_provenance: Option<SkillProvenance>,
    pub delegation: Option<Delegation>,
    pub context: IntentContext,
}

fn normalize_parts(req: &IntentRequest) -> Result<Parts, IntentError> {
    let script = normalize_script(req.script.as_ref())?;

    let tool_name = if script.is_some() {
        "script".to_string()
    } else {
        req.tool_name.trim().to_lowercase()
    };
    if tool_name.is_empty() {
        return Err(IntentError::invalid("tool_name is required"));
    }

    let args = normalize_args(&req.args)
        .map_err(|e| IntentError::invalid(format!("normalize args: {e}")))?;
    reject_raw_credential_material_map("args", &args)?;

    let (targets, arg_provenance) = match &script {
        Some(s) => {
            let targets = if req.targets.is_empty() {
                let union: Vec<Target> = s
                    .steps
                    .iter()
                    .flat_map(|st| st.targets.iter().cloned())
                    .collect();
                normalize_targets(&tool_name, &union)?
            } else {
                normalize_targets(&tool_name, &req.targets)?
            };
            let provenance = if req.arg_provenance.is_empty() {
                let union: Vec<ArgProvenance> = s
                    .steps
                    .iter()
                    .flat_map(|st| st.arg_provenance.iter().cloned())
                    .collect();
                normalize_arg_provenance(&union)?
            } else {
                normalize_arg_provenance(&req.arg_provenance)?
            };
            (targets, provenance)
        }
        None => (
            normalize_targets(&tool_name, &req.targets)?,
            normalize_arg_provenance(&req.arg_provenance)?,
        ),
    };
    let skill_provenance = normalize_skill_provenance(req.skill_provenance.as_ref())?;
    let context = normalize_context(&req.context)?;
    let delegation = normalize_delegation(req.delegation.as_ref())?;
    let script_hash = match &script {
        Some(s) => Some(digest::script_hash_of(s)?),
        None => None,
    };
    Ok(Parts {
        tool_name,
        args,
        script_hash,
        script,
        targets,
        arg_provenance,
        skill_provenance,
        delegation,
        context,
    })
}

fn normalize_script(input: Option<&Script>) -> Result<Option<Script>, IntentError> {
    let Some(input) = input else {
        return Ok(None);
    };
    if input.steps.is_empty() {
        return Err(IntentError::invalid("script.steps must not be empty"));
    }
    if input.steps.len() > MAX_SCRIPT_STEPS {
        return Err(IntentError::invalid(format!(
            "script.steps exceeds max supported steps ({MAX_SCRIPT_STEPS})"
        )));
    }
    let mut steps = Vec::with_capacity(input.steps.len());
    for (index, step) in input.steps.iter().enumerate() {
        let tool_name = step.tool_name.trim().to_lowercase();
        if tool_name.is_empty() {
            return Err(IntentError::invalid(format!(
                "script.steps[{index}].tool_name is required"
            )));
        }
        let args = normalize_args(&step.args).map_err(|e| {
            IntentError::invalid(format!("normalize script.steps[{index}].args: {e}"))
        })?;
        let targets = normalize_targets(&tool_name, &step.targets).map_err(|e| {
            IntentError::invalid(format!("normalize script.steps[{index}].targets: {e}"))
        })?;
        let arg_provenance = normalize_arg_provenance(&step.arg_provenance).map_err(|e| {
            IntentError::invalid(format!(
                "normalize script.steps[{index}].arg_provenance: {e}"
            ))
        })?;
        steps.push(ScriptStep {
            tool_name,
            args,
            targets,
            arg_provenance,
        });
    }
    Ok(Some(Script { steps }))
}

/// Recursively trim every string value and every key of an object; an empty key is an error.
pub fn normalize_args(args: &JsonMap) -> Result<JsonMap, &'static str> {
    normalize_map(args, 0)
}

fn normalize_map(map: &JsonMap, depth: usize) -> Result<JsonMap, &'static str> {
    if depth > MAX_JSON_DEPTH {
        return Err("args exceeds maximum nesting depth");
    }
    let mut out = JsonMap::new();
    for (key, value) in map {
        let key = key.trim();
        if key.is_empty() {
            return Err("args contains empty key");
        }
        out.insert(key.to_string(), normalize_value(value, depth + 1)?);
    }
    Ok(out)
}

fn normalize_value(value: &Value, depth: usize) -> Result<Value, &'static str> {
    if depth > MAX_JSON_DEPTH {
        return Err("args exceeds maximum nesting depth");
    }
    Ok(match value {
        Value::String(s) => {
            let t = s.trim();
            if t.len() == s.len() {
                Value::String(s.clone())
            } else {
                Value::String(t.to_string())
            }
        }
        Value::Object(m) => Value::Object(normalize_map(m, depth)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| normalize_value(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// Reject raw credentials anywhere in `map` (keys visited in sorted order, as Go does).
fn reject_raw_credential_material_map(path: &str, map: &JsonMap) -> Result<(), IntentError> {
    let mut buf = String::with_capacity(path.len() + 32);
    buf.push_str(path);
    reject_in_map(&mut buf, map)
}

/// `path` is the JSON path so far; it is extended per child and restored afterwards, so the
/// error path is only materialised when a secret is found.
fn reject_in_map(path: &mut String, map: &JsonMap) -> Result<(), IntentError> {
    if map.keys().is_sorted() {
        map.iter().try_for_each(|(k, v)| reject_entry(path, k, v))
    } else {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        keys.into_iter()
            .try_for_each(|k| reject_entry(path, k, &map[k.as_str()]))
    }
}

fn reject_entry(path: &mut String, key: &str, value: &Value) -> Result<(), IntentError> {
    let len = path.len();
    path.push('.');
    path.push_str(key);
    if let Value::String(text) = value
        && key_suggests_credential_material(key)
        && looks_like_credential_material_value(text)
    {
        return Err(IntentError::raw_credential(path.as_str()));
    }
    reject_in_value(path, value)?;
    path.truncate(len);
    Ok(())
}

fn reject_in_value(path: &mut String, value: &Value) -> Result<(), IntentError> {
    match value {
        Value::Object(map) => reject_in_map(path, map),
        Value::Array(items) => {
            for (index, nested) in items.iter().enumerate() {
                if matches!(nested, Value::Object(_) | Value::Array(_)) {
                    let len = path.len();
                    path.push('[');
                    path.push_str(&index.to_string());
                    path.push(']');
                    reject_in_value(path, nested)?;
                    path.truncate(len);
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

const CREDENTIAL_KEY_EXEMPT_SUFFIXES: &[&str] = &[
    "_ref",
    "_refs",
    "_digest",
    "_digests",
    "_hash",
    "_issuer",
    "_source",
    "_type",
    "_ttl",
    "_ttl_seconds",
    "_id",
    "_ids",
    "_name",
    "_names",
    "_scope",
    "_scopes",
];

/// `token|secret|api[_-]?key|access[_-]?key|password|credential` in the key, case-insensitive,
/// unless the key ends in a reference-like suffix.
pub fn key_suggests_credential_material(key: &str) -> bool {
    let k = key.trim().to_lowercase();
    if k.is_empty() {
        return false;
    }
    if CREDENTIAL_KEY_EXEMPT_SUFFIXES
        .iter()
        .any(|s| k.ends_with(s))
    {
        return false;
    }
    if ["token", "secret", "password", "credential"]
        .iter()
        .any(|w| k.contains(w))
    {
        return true;
    }
    for stem in ["api", "access"] {
        let mut from = 0;
        while let Some(i) = k[from..].find(stem) {
            let rest = &k[from + i + stem.len()..];
            let rest = rest
                .strip_prefix('_')
                .or_else(|| rest.strip_prefix('-'))
                .unwrap_or(rest);
            if rest.starts_with("key") {
                return true;
            }
            from += i + stem.len();
        }
    }
    false
}

/// Known token prefixes, or ≥16 chars of letters and digits without whitespace; reference
/// forms (`env:`, `stub:`, `cmd:`, `ref:`, `sha256:`, 64-hex) are exempt.
pub fn looks_like_credential_material_value(value: &str) -> bool {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return false;
    }
    let lower = trimmed.to_lowercase();
    if ["env:", "stub:", "cmd:", "ref:", "sha256:"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return false;
    }
    if is_hex64(&lower) {
        return false;
    }
    if ["ghp_", "gho_", "github_pat_", "sk-", "AKIA", "ASIA"]
        .iter()
        .any(|p| trimmed.starts_with(p))
    {
        return true;
    }
    if trimmed.len() < 16 || trimmed.contains([' ', '\t', '\r', '\n']) {
        return false;
    }
    let has_alpha = trimmed.bytes().any(|b| b.is_ascii_alphabetic());
    let has_digit = trimmed.bytes().any(|b| b.is_ascii_digit());
    has_alpha && has_digit
}

/// `^[a-f0-9]{64}$`.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn normalize_discovery_method(value: &str) -> String {
    let m = value.trim().to_lowercase();
    if m.is_empty() {
        return "unknown".to_string();
    }
    m.replace(['-', ' '], "_")
}

/// Normalise, infer, deduplicate and sort targets (`tool_name` feeds the class hints).
pub fn normalize_targets(tool_name: &str, targets: &[Target]) -> Result<Vec<Target>, IntentError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<Target> = Vec::with_capacity(targets.len());
    for target in targets {
        let kind = target.kind.trim().to_lowercase();
        let value = target.value.trim().to_string();
        let operation = target.operation.trim().to_lowercase();
        let sensitivity = target.sensitivity.trim().to_lowercase();
        let mut endpoint_class = target.endpoint_class.trim().to_lowercase();
        let mut endpoint_domain = target.endpoint_domain.trim().to_lowercase();
        let discovery_method = normalize_discovery_method(&target.discovery_method);

        if kind.is_empty() || value.is_empty() {
            return Err(IntentError::invalid("targets require kind and value"));
        }
        if !TARGET_KINDS.contains(&kind.as_str()) {
            return Err(IntentError::invalid(format!(
                "unsupported target kind: {}",
                echo(&kind)
            )));
        }
        if endpoint_class.is_empty() {
            endpoint_class = infer_endpoint_class(&kind, &operation, tool_name).to_string();
        }
        if !ENDPOINT_CLASSES.contains(&endpoint_class.as_str()) {
            return Err(IntentError::invalid(format!(
                "unsupported endpoint class: {}",
                echo(&endpoint_class)
            )));
        }
        if endpoint_domain.is_empty() {
            endpoint_domain = infer_endpoint_domain(&kind, &value);
        }
        if !DISCOVERY_METHODS.contains(&discovery_method.as_str()) {
            return Err(IntentError::invalid(format!(
                "unsupported discovery method: {}",
                echo(&discovery_method)
            )));
        }
        let destructive = target.destructive
            || target.destructive_hint
            || infer_destructive(&endpoint_class, &operation);
        let normalized = Target {
            kind,
            value,
            operation,
            sensitivity,
            endpoint_class,
            endpoint_domain,
            destructive,
            discovery_method,
            read_only_hint: target.read_only_hint,
            destructive_hint: target.destructive_hint,
            idempotent_hint: target.idempotent_hint,
            open_world_hint: target.open_world_hint,
        };
        out.push(normalized);
    }
    // `compare_targets` orders by every field, so equal neighbours after the sort are exactly
    // the duplicates (no hashing, no clones).
    out.sort_by(compare_targets);
    out.dedup();
    Ok(out)
}

fn compare_targets(a: &Target, b: &Target) -> Ordering {
    a.kind
        .cmp(&b.kind)
        .then_with(|| a.value.cmp(&b.value))
        .then_with(|| a.operation.cmp(&b.operation))
        .then_with(|| a.sensitivity.cmp(&b.sensitivity))
        .then_with(|| a.endpoint_class.cmp(&b.endpoint_class))
        .then_with(|| a.endpoint_domain.cmp(&b.endpoint_domain))
        .then_with(|| a.destructive.cmp(&b.destructive))
        .then_with(|| a.discovery_method.cmp(&b.discovery_method))
        .then_with(|| a.read_only_hint.cmp(&b.read_only_hint))
        .then_with(|| a.destructive_hint.cmp(&b.destructive_hint))
        .then_with(|| a.idempotent_hint.cmp(&b.idempotent_hint))
        .then_with(|| a.open_world_hint.cmp(&b.open_world_hint))
}

/// Endpoint class for a target without one (gate.md §3.2 inference table).
pub fn infer_endpoint_class(kind: &str, operation: &str, tool_name: &str) -> &'static str {
    match kind {
        "path" => match operation {
            "read" | "get" | "list" | "open" | "cat" | "head" | "download" | "stat" => "fs.read",
            "write" | "append" | "put" | "create" | "update" | "save" | "copy" | "move"
            | "rename" => "fs.write",
            "delete" | "remove" | "rm" | "unlink" | "rmdir" | "drop" | "truncate" => "fs.delete",
            _ => {
                if has_tool_hint(tool_name, &["read", "list", "fetch", "search"]) {
                    "fs.read"
                } else if has_tool_hint(tool_name, &["write", "update", "save", "create"]) {
                    "fs.write"
                } else if has_tool_hint(tool_name, &["delete", "remove", "rm", "drop"]) {
                    "fs.delete"
                } else {
                    "other"
                }
            }
        },
        "host" | "url" => match operation {
            "dns" | "resolve" | "lookup" => "net.dns",
            _ => "net.http",
        },
        "other" => match operation {
            "exec" | "spawn" | "run" | "shell" | "command" => "proc.exec",
            _ if has_tool_hint(tool_name, &["exec", "shell", "command", "spawn", "run"]) => {
                "proc.exec"
            }
            _ => "other",
        },
        _ => "other",
    }
}

/// Go's `path.Base(lower(trim(tool)))` contains any of `hints`.
fn has_tool_hint(tool_name: &str, hints: &[&str]) -> bool {
    let lower = tool_name.trim().to_lowercase();
    let base = go_path_base(&lower);
    hints.iter().any(|h| base.contains(h))
}

fn go_path_base(p: &str) -> &str {
    if p.is_empty() {
        return ".";
    }
    let stripped = p.trim_end_matches('/');
    if stripped.is_empty() {
        return "/";
    }
    match stripped.rfind('/') {
        Some(i) => &stripped[i + 1..],
        None => stripped,
    }
}

/// True for fs.delete / proc.exec classes and delete-like or exec-like operations.
pub fn infer_destructive(endpoint_class: &str, operation: &str) -> bool {
    matches!(endpoint_class, "fs.delete" | "proc.exec")
        || matches!(
            operation,
            "delete"
                | "remove"
                | "rm"
                | "unlink"
                | "rmdir"
                | "drop"
                | "truncate"
                | "exec"
                | "spawn"
        )
}

/// `endpoint_domain` for host and url targets (empty for other kinds).
pub fn infer_endpoint_domain(kind: &str, value: &str) -> String {
    match kind {
        "host" => {
            let mut host = value.trim();
            host = host.strip_prefix("http://").unwrap_or(host);
            host = host.strip_prefix("https://").unwrap_or(host);
            if let Some(i) = host.find('/') {
                host = &host[..i];
            }
            if let Some(i) = host.find(':') {
                host = &host[..i];
            }
            host.trim().to_lowercase()
        }
        "url" => go_url_hostname(value.trim())
            .map(|h| h.trim().to_lowercase())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// A subset of Go's `url.Parse(raw).Hostname()`: `None` where Go's parse fails.
fn go_url_hostname(raw: &str) -> Option<String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let raw = match raw.find('#') {
        Some(i) => &raw[..i],
        None => raw,
    };
    // Scheme: [A-Za-z][A-Za-z0-9+.-]* ':'
    let mut scheme_len = None;
    for (i, b) in raw.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' => {
                if i == 0 {
                    break;
                }
            }
            b':' => {
                if i == 0 {
                    return None; // missing protocol scheme
                }
                scheme_len = Some(i);
                break;
            }
            _ => break,
        }
    }
    let rest = match scheme_len {
        Some(i) => &raw[i + 1..],
        None => raw,
    };
    let rest = match rest.find('?') {
        Some(i) => &rest[..i],
        None => rest,
    };
    if !rest.starts_with('/') {
        if scheme_len.is_none() {
            let segment = rest.split('/').next().unwrap_or("");
            if segment.contains(':') {
                return None;
            }
        }
        return Some(String::new());
    }
    if rest.starts_with("///") || !rest.starts_with("//") {
        return Some(String::new());
    }
    let after = &rest[2..];
    let authority = match after.find('/') {
        Some(i) => &after[..i],
        None => after,
    };
    let host_port = match authority.rfind('@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let host = if let Some(stripped) = host_port.strip_prefix('[') {
        let end = stripped.find(']')?;
        let tail = &stripped[end + 1..];
        if !tail.is_empty() && !valid_optional_port(tail) {
            return None;
        }
        &stripped[..end]
    } else {
        let host = match host_port.rfind(':') {
            Some(i) => {
                if !valid_optional_port(&host_port[i..]) {
                    return None;
                }
                &host_port[..i]
            }
            None => host_port,
        };
        if host.bytes().any(|b| b < 0x80 && !host_byte_allowed(b)) {
            return None;
        }
        host
    };
    Some(host.to_string())
}

fn valid_optional_port(port: &str) -> bool {
    match port.strip_prefix(':') {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        None => port.is_empty(),
    }
}

fn host_byte_allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
                | b'-'
                | b'_'
                | b'.'
                | b'~'
        )
}

/// Validate, deduplicate and sort `arg_provenance`.
pub fn normalize_arg_provenance(
    provenance: &[ArgProvenance],
) -> Result<Vec<ArgProvenance>, IntentError> {
    let mut out: Vec<ArgProvenance> = Vec::with_capacity(provenance.len());
    for entry in provenance {
        let arg_path = entry.arg_path.trim().to_string();
        let source = entry.source.trim().to_lowercase();
        let source_ref = entry.source_ref.trim().to_string();
        let integrity_digest = entry.integrity_digest.trim().to_lowercase();
        if arg_path.is_empty() || source.is_empty() {
            return Err(IntentError::invalid(
                "arg provenance requires arg_path and source",
            ));
        }
        if !PROVENANCE_SOURCES.contains(&source.as_str()) {
            return Err(IntentError::invalid(format!(
                "unsupported provenance source: {}",
                echo(&source)
            )));
        }
        if !integrity_digest.is_empty() && !is_hex64(&integrity_digest) {
            return Err(IntentError::invalid(format!(
                "invalid provenance integrity_digest: {}",
                echo(&integrity_digest)
            )));
        }
        let normalized = ArgProvenance {
            arg_path,
            source,
            source_ref,
            integrity_digest,
        };
        out.push(normalized);
    }
    // The order covers every field, so equal neighbours are exactly the duplicates.
    out.sort_by(|a, b| {
        a.arg_path
            .cmp(&b.arg_path)
            .then_with(|| a.source.cmp(&b.source))
            .then_with(|| a.source_ref.cmp(&b.source_ref))
            .then_with(|| a.integrity_digest.cmp(&b.integrity_digest))
    });
    out.dedup();
    Ok(out)
}

fn normalize_skill_provenance(
    input: Option<&SkillProvenance>,
) -> Result<Option<SkillProvenance>, IntentError> {
    let Some(input) = input else {
        return Ok(None);
    };
    let skill_name = input.skill_name.trim().to_string();
    let source = input.source.trim().to_lowercase();
    let publisher = input.publisher.trim().to_string();
    if skill_name.is_empty() || source.is_empty() || publisher.is_empty() {
        return Err(IntentError::invalid(
            "skill provenance requires skill_name, source, and publisher",
        ));
    }
    let digest = input.digest.trim().to_lowercase();
    if !digest.is_empty() && !is_hex64(&digest) {
        return Err(IntentError::invalid(format!(
            "invalid skill provenance digest: {}",
            echo(&digest)
        )));
    }
    Ok(Some(SkillProvenance {
        skill_name,
        skill_version: input.skill_version.trim().to_string(),
        source,
        publisher,
        digest,
        signature_key_id: input.signature_key_id.trim().to_string(),
    }))
}

fn check_enum(field: &str, value: &str, allowed: &[&str]) -> Result<(), IntentError> {
    if value.is_empty() || allowed.contains(&value) {
        Ok(())
    } else {
        Err(IntentError::invalid(format!(
            "{field} is unsupported: {}",
            echo(value)
        )))
    }
}

fn trimmed(s: &str) -> String {
    s.trim().to_string()
}

fn normalize_context(ctx: &IntentContext) -> Result<IntentContext, IntentError> {
    let identity = trimmed(&ctx.identity);
    let workspace = trimmed(&ctx.workspace);
    let risk_class = ctx.risk_class.trim().to_lowercase();
    if identity.is_empty() {
        return Err(IntentError::invalid("context.identity is required"));
    }
    if workspace.is_empty() {
        return Err(IntentError::invalid("context.workspace is required"));
    }
    if risk_class.is_empty() {
        return Err(IntentError::invalid("context.risk_class is required"));
    }
    let auth_context = normalize_context_auth(&ctx.auth_context)?;
    let sandbox = normalize_context_sandbox(ctx.sandbox.as_ref())?;
    let agent_identity = normalize_agent_identity(ctx.agent_identity.as_ref())?;
    let credential_scopes = normalize_string_set(&ctx.credential_scopes);
    let context_set_digest = ctx.context_set_digest.trim().to_lowercase();
    if !context_set_digest.is_empty() && !is_hex64(&context_set_digest) {
        return Err(IntentError::invalid(
            "context.context_set_digest must be sha256 hex",
        ));
    }
    if ctx.credential_ttl_seconds < 0 {
        return Err(IntentError::invalid(
            "context.credential_ttl_seconds must be >= 0",
        ));
    }
    let credential_source = ctx.credential_source.trim().to_lowercase();
    check_enum(
        "context.credential_source",
        &credential_source,
        CREDENTIAL_SOURCES,
    )?;
    let credential_access_type = ctx.credential_access_type.trim().to_lowercase();
    check_enum(
        "context.credential_access_type",
        &credential_access_type,
        CREDENTIAL_ACCESS_TYPES,
    )?;
    let context_evidence_mode = ctx.context_evidence_mode.trim().to_lowercase();
    if !matches!(
        context_evidence_mode.as_str(),
        "" | "best_effort" | "required"
    ) {
        return Err(IntentError::invalid(
            "context.context_evidence_mode must be best_effort or required",
        ));
    }
    let mut phase = ctx.phase.trim().to_lowercase();
    if phase.is_empty() {
        phase = "apply".to_string();
    }
    if phase != "plan" && phase != "apply" {
        return Err(IntentError::invalid("context.phase must be plan or apply"));
    }
    Ok(IntentContext {
        identity,
        workspace: workspace.replace('\\', "/"),
        risk_class,
        phase,
        agent_id: trimmed(&ctx.agent_id),
        agent_identity,
        run_id: trimmed(&ctx.run_id),
        workflow_id: trimmed(&ctx.workflow_id),
        repo: trimmed(&ctx.repo),
        environment: trimmed(&ctx.environment),
        job_id: trimmed(&ctx.job_id),
        session_id: trimmed(&ctx.session_id),
        request_id: trimmed(&ctx.request_id),
        credential_ref: trimmed(&ctx.credential_ref),
        credential_source,
        credential_access_type,
        credential_issuer: trimmed(&ctx.credential_issuer),
        credential_subject: trimmed(&ctx.credential_subject),
        credential_owner: trimmed(&ctx.credential_owner),
        credential_target_binding: trimmed(&ctx.credential_target_binding),
        credential_run_binding: trimmed(&ctx.credential_run_binding),
        credential_job_binding: trimmed(&ctx.credential_job_binding),
        credential_ttl_seconds: ctx.credential_ttl_seconds,
        approval_ref: trimmed(&ctx.approval_ref),
        wrkr_inventory_ref: trimmed(&ctx.wrkr_inventory_ref),
        agent_action_bom_ref: trimmed(&ctx.agent_action_bom_ref),
        auth_context,
        sandbox,
        credential_scopes,
        environment_fingerprint: trimmed(&ctx.environment_fingerprint),
        context_set_digest,
        context_evidence_mode,
        context_refs: normalize_string_set(&ctx.context_refs),
        contract_family_id: trimmed(&ctx.contract_family_id),
        contract_id: trimmed(&ctx.contract_id),
        contract_revision: ctx.contract_revision,
        proposal_digest: trimmed(&ctx.proposal_digest),
        activation_digest: trimmed(&ctx.activation_digest),
        policy_digest: trimmed(&ctx.policy_digest),
        approval_token_digest: trimmed(&ctx.approval_token_digest),
        delegation_digest: trimmed(&ctx.delegation_digest),
        expected_outcome: trimmed(&ctx.expected_outcome),
        effect_scope: normalize_string_set(&ctx.effect_scope),
        containment_scope: normalize_string_set(&ctx.containment_scope),
    })
}

/// Trim, drop empties, deduplicate, sort.
fn normalize_string_set(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn normalize_context_auth(auth: &JsonMap) -> Result<JsonMap, IntentError> {
    if auth.is_empty() {
        return Ok(JsonMap::new());
    }
    let normalized = normalize_args(auth)
        .map_err(|e| IntentError::invalid(format!("normalize context.auth_context: {e}")))?;
    reject_raw_credential_material_map("context.auth_context", &normalized)?;
    Ok(normalized)
}

fn normalize_context_sandbox(input: Option<&Sandbox>) -> Result<Option<Sandbox>, IntentError> {
    let Some(input) = input else {
        return Ok(None);
    };
    let network_mode = input.network_mode.trim().to_lowercase();
    check_enum(
        "context.sandbox.network_mode",
        &network_mode,
        SANDBOX_NETWORK_MODES,
    )?;
    let env_exposure_mode = input.env_exposure_mode.trim().to_lowercase();
    check_enum(
        "context.sandbox.env_exposure_mode",
        &env_exposure_mode,
        SANDBOX_ENV_EXPOSURE_MODES,
    )?;
    let filesystem_isolation = input.filesystem_isolation.trim().to_lowercase();
    check_enum(
        "context.sandbox.filesystem_isolation",
        &filesystem_isolation,
        SANDBOX_FILESYSTEM_ISOLATIONS,
    )?;
    let user_mode = input.user_mode.trim().to_lowercase();
    check_enum("context.sandbox.user_mode", &user_mode, SANDBOX_USER_MODES)?;
    if input.timeout_seconds < 0 {
        return Err(IntentError::invalid(
            "context.sandbox.timeout_seconds must be >= 0",
        ));
    }
    let writable_paths =
        normalize_sandbox_path_list("context.sandbox.writable_paths", &input.writable_paths)?;
    let read_only_roots =
        normalize_sandbox_path_list("context.sandbox.read_only_roots", &input.read_only_roots)?;
    let evidence_ref = trimmed(&input.evidence_ref);
    let evidence_digest = input.evidence_digest.trim().to_lowercase();
    if !evidence_digest.is_empty() && !is_hex64(&evidence_digest) {
        return Err(IntentError::invalid(
            "context.sandbox.evidence_digest must be sha256 hex",
        ));
    }
    reject_sandbox_string("context.sandbox.evidence_ref", &evidence_ref)?;
    let out = Sandbox {
        network_mode,
        writable_paths,
        read_only_roots,
        env_exposure_mode,
        timeout_seconds: input.timeout_seconds,
        filesystem_isolation,
        user_mode,
        evidence_ref,
        evidence_digest,
    };
    Ok(if out.is_empty() { None } else { Some(out) })
}

fn normalize_sandbox_path_list(path: &str, values: &[String]) -> Result<Vec<String>, IntentError> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (index, raw) in values.iter().enumerate() {
        let value = go_clean_path(raw.trim());
        if value == "." || value.is_empty() {
            continue;
        }
        reject_sandbox_string(&format!("{path}[{index}]"), &value)?;
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out.sort();
    Ok(out)
}

/// `^[A-Za-z_][A-Za-z0-9_]*=`.
fn is_raw_env_assignment(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(first) = bytes.first() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || *first == b'_') {
        return false;
    }
    for &b in &bytes[1..] {
        if b == b'=' {
            return true;
        }
        if !(b.is_ascii_alphanumeric() || b == b'_') {
            return false;
        }
    }
    false
}

fn reject_sandbox_string(path: &str, value: &str) -> Result<(), IntentError> {
    let t = value.trim();
    if t.is_empty() {
        return Ok(());
    }
    if is_raw_env_assignment(t) {
        return Err(IntentError::invalid(format!(
            "{path} must not contain raw environment variable assignments"
        )));
    }
    if path.ends_with(".evidence_ref") {
        let lower = t.to_lowercase();
        if ["ref:", "receipt:", "proof:", "sandbox:", "sha256:"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            return Ok(());
        }
        if looks_like_credential_material_value(t) {
            return Err(IntentError::invalid(format!(
                "{path} must not contain secret-like sandbox material; use sandbox evidence refs or digests instead"
            )));
        }
    }
    Ok(())
}

/// Go's `filepath.Clean` on a Unix path (lexical).
fn go_clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn normalize_agent_identity(
    input: Option<&AgentIdentity>,
) -> Result<Option<AgentIdentity>, IntentError> {
    let Some(input) = input else {
        return Ok(None);
    };
    let manifest_digest = input.manifest_digest.trim().to_lowercase();
    if !manifest_digest.is_empty() && !is_hex64(&manifest_digest) {
        return Err(IntentError::invalid(
            "context.agent_identity.manifest_digest must be sha256 hex",
        ));
    }
    let issued_at = input.issued_at.to_utc();
    let approved_at = input.approved_at.to_utc();
    let expires_at = input.expires_at.to_utc();
    if let (Some(i), Some(a)) = (issued_at.get(), approved_at.get())
        && a < i
    {
        return Err(IntentError::invalid(
            "context.agent_identity.approved_at must be on or after issued_at",
        ));
    }
    if let Some(e) = expires_at.get() {
        if let Some(i) = issued_at.get()
            && e <= i
        {
            return Err(IntentError::invalid(
                "context.agent_identity.expires_at must be after issued_at",
            ));
        }
        if let Some(a) = approved_at.get()
            && e <= a
        {
            return Err(IntentError::invalid(
                "context.agent_identity.expires_at must be after approved_at",
            ));
        }
    }
    Ok(Some(AgentIdentity {
        lifecycle_states: normalize_string_set(&input.lifecycle_states),
        owner: trimmed(&input.owner),
        manifest_digest,
        publisher: trimmed(&input.publisher),
        source: input.source.trim().to_lowercase(),
        issued_at,
        approved_at,
        expires_at,
        revoked: input.revoked,
    }))
}

fn expires_not_after(issued: GoTime, expires: GoTime) -> bool {
    match (issued.get(), expires.get()) {
        (Some(i), Some(e)) => e <= i,
        _ => false,
    }
}

fn normalize_delegation(input: Option<&Delegation>) -> Result<Option<Delegation>, IntentError> {
    let Some(input) = input else {
        return Ok(None);
    };
    let requester_identity = trimmed(&input.requester_identity);
    if requester_identity.is_empty() {
        return Err(IntentError::invalid(
            "delegation.requester_identity is required",
        ));
    }
    let mut chain: Vec<DelegationLink> = Vec::with_capacity(input.chain.len());
    for (i, link) in input.chain.iter().enumerate() {
        let delegator_identity = trimmed(&link.delegator_identity);
        let delegate_identity = trimmed(&link.delegate_identity);
        if delegator_identity.is_empty() || delegate_identity.is_empty() {
            return Err(IntentError::invalid(format!(
                "delegation.chain[{i}] requires delegator_identity and delegate_identity"
            )));
        }
        if let Some(prev) = chain.last()
            && prev.delegate_identity != delegator_identity
        {
            return Err(IntentError::invalid(format!(
                "delegation.chain[{i}] delegator_identity must match delegation.chain[{}].delegate_identity",
                i - 1
            )));
        }
        let issued_at = link.issued_at.to_utc();
        let expires_at = link.expires_at.to_utc();
        if expires_not_after(issued_at, expires_at) {
            return Err(IntentError::invalid(format!(
                "delegation.chain[{i}] expires_at must be after issued_at"
            )));
        }
        chain.push(DelegationLink {
            delegator_identity,
            delegate_identity,
            scope_class: link.scope_class.trim().to_lowercase(),
            token_ref: trimmed(&link.token_ref),
            issued_at,
            expires_at,
        });
    }
    let issued_at = input.issued_at.to_utc();
    let expires_at = input.expires_at.to_utc();
    if expires_not_after(issued_at, expires_at) {
        return Err(IntentError::invalid(
            "delegation.expires_at must be after issued_at",
        ));
    }
    if let Some(last) = chain.last()
        && last.delegate_identity != requester_identity
    {
        return Err(IntentError::invalid(
            "delegation.chain last delegate_identity must match delegation.requester_identity",
        ));
    }
    Ok(Some(Delegation {
        requester_identity,
        scope_class: input.scope_class.trim().to_lowercase(),
        token_refs: normalize_string_set(&input.token_refs),
        chain,
        issued_at,
        expires_at,
    }))
}

#[cfg(test)]
mod tests;
