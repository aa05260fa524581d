#!/usr/bin/env bash
# Validate deploy/ without a container engine:
#   - Kubernetes manifests with kubernetes-validate --strict (API schemas it ships), against the
#     newest schema it has and against 1.29 (the oldest version with native sidecars);
#   - the ServiceMonitor (a CRD: no shipped schema) against a hand-written subset schema;
#   - the compose file with check-jsonschema --builtin-schema vendor.compose-spec;
#   - prometheus.yml with promtool (syntax, then full with the secret file path present);
#   - the Dockerfile with static checks (multi-stage, non-root USER, no :latest);
#   - every `gait mcp serve` flag used in deploy/ against the built binary's --help
#     (skipped with a note when no gait binary is built).
# Installs kubernetes-validate and check-jsonschema with pip when missing.
# Prints PASS/FAIL per check and `N passed, N failed`; exit 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "PASS $1"; }
ko() { failed=$((failed + 1)); echo "FAIL $1: $2"; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

need_pip() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "# installing $2 with pip" >&2
    python3 -m pip install --quiet "$2" >/dev/null 2>&1 || true
    command -v "$1" >/dev/null 2>&1
}

K8S=deploy/kubernetes
manifests=("$K8S/configmap.yaml" "$K8S/secret.yaml" "$K8S/deployment.yaml" "$K8S/service.yaml" "$K8S/networkpolicy.yaml")
if need_pip kubernetes-validate kubernetes-validate; then
    for v in "" "1.29.0"; do
        label=${v:-default}
        args=(--strict)
        [ -n "$v" ] && args+=(-k "$v")
        if out=$(kubernetes-validate "${args[@]}" "${manifests[@]}" 2>&1) && ! grep -qE '^(ERROR|WARN)' <<<"$out"; then
            ok "kubernetes_manifests_valid_k8s_${label}"
        else
            ko "kubernetes_manifests_valid_k8s_${label}" "$(grep -E 'ERROR|WARN|rror' <<<"$out" | head -5 | tr '\n' ' ')"
        fi
    done
    # a deliberately broken manifest must fail: proves the validator is not a no-op
    sed 's/containerPort: 8787/containerPort: "not-a-port"/' "$K8S/deployment.yaml" >"$TMP/broken.yaml"
    if kubernetes-validate --strict "$TMP/broken.yaml" >/dev/null 2>&1; then
        ko "kubernetes_validator_rejects_broken_manifest" "a bad containerPort passed validation"
    else
        ok "kubernetes_validator_rejects_broken_manifest"
    fi
else
    ko "kubernetes_manifests_valid" "kubernetes-validate not installed and pip install failed"
fi

if need_pip check-jsonschema check-jsonschema; then
    if out=$(python3 - "$K8S/servicemonitor.yaml" "$TMP/sm.json" <<'PY' 2>&1
import json, sys, yaml
json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], "w"))
PY
    ) && out=$(check-jsonschema --schemafile "$K8S/schemas/servicemonitor-v1.subset.schema.json" "$TMP/sm.json" 2>&1); then
        ok "servicemonitor_valid_against_crd_subset_schema"
    else
        ko "servicemonitor_valid_against_crd_subset_schema" "$(echo "$out" | head -5 | tr '\n' ' ')"
    fi
    if out=$(check-jsonschema --builtin-schema vendor.compose-spec deploy/compose/docker-compose.yml 2>&1); then
        ok "compose_file_valid_compose_spec"
    else
        ko "compose_file_valid_compose_spec" "$(echo "$out" | head -5 | tr '\n' ' ')"
    fi
else
    ko "compose_file_valid_compose_spec" "check-jsonschema not installed and pip install failed"
fi

# compose references: every bind-mounted host file exists, every secret is declared
if out=$(python3 - deploy/compose/docker-compose.yml <<'PY' 2>&1
import os, sys, yaml
path = sys.argv[1]
base = os.path.dirname(path)
doc = yaml.safe_load(open(path))
errs = []
for name, svc in doc["services"].items():
    for vol in svc.get("volumes", []):
        src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
        if src.startswith(".") and not os.path.exists(os.path.join(base, src)):
            errs.append(f"{name}: missing {src}")
        elif not src.startswith((".", "/")) and src not in (doc.get("volumes") or {}):
            errs.append(f"{name}: undeclared volume {src}")
    for sec in svc.get("secrets", []):
        s = sec if isinstance(sec, str) else sec["source"]
        if s not in (doc.get("secrets") or {}):
            errs.append(f"{name}: undeclared secret {s}")
print("; ".join(errs))
sys.exit(1 if errs else 0)
PY
); then ok "compose_references_resolve"; else ko "compose_references_resolve" "$out"; fi

if command -v promtool >/dev/null 2>&1; then
    if out=$(promtool check config --syntax-only deploy/compose/prometheus.yml 2>&1); then
        ok "prometheus_config_syntax"
    else
        ko "prometheus_config_syntax" "$(echo "$out" | tail -3 | tr '\n' ' ')"
    fi
    # full check: same file, only the secret mount path pointed at a real file
    echo "token" >"$TMP/gait_metrics_token"
    sed "s#/run/secrets/gait_metrics_token#$TMP/gait_metrics_token#" deploy/compose/prometheus.yml >"$TMP/prometheus.yml"
    if out=$(promtool check config "$TMP/prometheus.yml" 2>&1); then
        ok "prometheus_config_full_check"
    else
        ko "prometheus_config_full_check" "$(echo "$out" | tail -3 | tr '\n' ' ')"
    fi
else
    ko "prometheus_config_syntax" "promtool not installed (apt-get install prometheus)"
fi

DF=deploy/Dockerfile
problems=()
[ "$(grep -cE '^FROM ' "$DF")" -ge 2 ] || problems+=("not multi-stage")
grep -qE '^USER +(65532|[1-9][0-9]*)(:[0-9]+)?$' "$DF" || problems+=("no numeric non-root USER")
grep -qE '^FROM [^ ]+:latest' "$DF" && problems+=("FROM uses :latest")
grep -qE '^ADD ' "$DF" && problems+=("ADD instead of COPY")
grep -q -- '--locked' "$DF" || problems+=("cargo build without --locked")
tail -n +"$(grep -nE '^FROM .* AS runtime' "$DF" | cut -d: -f1)" "$DF" | grep -qE '^USER ' \
    || grep -qE '^FROM base AS runtime' "$DF" || problems+=("runtime stage does not inherit a USER")
[ "$(grep -E '^FROM ' "$DF" | tail -1 | awk '{print $NF}')" = "runtime" ] || problems+=("runtime is not the default (last) stage")
if [ ${#problems[@]} -eq 0 ]; then ok "dockerfile_static_checks"; else ko "dockerfile_static_checks" "${problems[*]}"; fi

# deploy/ must only use flags that `gait mcp serve` has
GAIT=${GAIT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/gait}
[ -x "$GAIT" ] || GAIT=${CARGO_TARGET_DIR:-$ROOT/target}/debug/gait
if [ -x "$GAIT" ]; then
    help=$("$GAIT" mcp serve --help 2>&1)
    flags=$(python3 - <<'PY'
import yaml
c = yaml.safe_load(open("deploy/compose/docker-compose.yml"))["services"]["gait"]["command"]
d = yaml.safe_load(open("deploy/kubernetes/deployment.yaml"))["spec"]["template"]["spec"]
k = [x for x in d["initContainers"] + d["containers"] if x["name"] == "gait"][0]["args"]
print("\n".join(sorted({a.split("=")[0] for a in c + k if a.startswith("--")})))
PY
)
    missing=()
    for f in $flags; do grep -qE -- "$f([ =,]|$)" <<<"$help" || missing+=("$f"); done
    if [ ${#missing[@]} -eq 0 ]; then ok "deploy_flags_exist_in_gait_mcp_serve"; else ko "deploy_flags_exist_in_gait_mcp_serve" "$GAIT lacks ${missing[*]}"; fi
else
    echo "# no gait binary built: deploy flag check skipped"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
