#!/usr/bin/env python3
"""Run deploy/compose/docker-compose.yml for real without a container engine.

Reads the compose file and starts each service as a local process (gait, the two demo tool
servers, Prometheus) with the *same* commands and the *same* mounted config files. The only
changes are mechanical and printed: container listen addresses and service host names become
127.0.0.1 with ephemeral ports, container paths become the bind-mounted host files (or temp dirs
for named volumes and secrets). Then it checks the topology end to end: routing to both tool
servers, policy denials, auth, and Prometheus scraping gait's /metrics with the token.
"""

import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as hz  # noqa: E402
import mcp_client as mc  # noqa: E402

import yaml  # noqa: E402  (PyYAML)

COMPOSE = os.path.join(hz.REPO_ROOT, "deploy", "compose", "docker-compose.yml")
H = hz.Harness("compose-local")


def binary_for(svc):
    image = svc.get("image", "")
    target = (svc.get("build") or {}).get("target", "")
    if image.startswith("gait-demo-upstream") or target == "demo-upstream":
        return [hz.upstream_bin()]
    if image.startswith("gait:") or target == "runtime":
        return [hz.gait_bin()]
    if "prometheus" in image:
        return [os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")]
    raise RuntimeError(f"no local binary for image {image!r}")


def interpolate(s, env):
    def sub(m):
        name = m.group(1)
        if name not in env:
            raise RuntimeError(f"compose needs ${{{name}}}")
        return env[name]
    return re.sub(r"\$\{([A-Z0-9_]+)(?::?[?-][^}]*)?\}", sub, s)


def toposort(services):
    order, seen = [], set()

    def visit(n, stack=()):
        if n in seen:
            return
        if n in stack:
            raise RuntimeError(f"depends_on cycle at {n}")
        deps = services[n].get("depends_on") or {}
        for d in (deps if isinstance(deps, list) else deps.keys()):
            visit(d, stack + (n,))
        seen.add(n)
        order.append(n)

    for n in services:
        visit(n)
    return order


def main():
    doc = yaml.safe_load(open(COMPOSE))
    base = os.path.dirname(COMPOSE)
    services = doc["services"]
    keys = hz.gen_keypair(H.dir("keys"))
    env = {
        "GAIT_MCP_TOKEN": os.environ.get("GAIT_MCP_TOKEN", "compose-local-token-0123456789"),
        "GAIT_METRICS_TOKEN": os.environ.get("GAIT_METRICS_TOKEN", "compose-local-metrics-0123456789"),
        "GAIT_PRIVATE_KEY": os.environ.get("GAIT_PRIVATE_KEY", keys["private_b64"]),
    }

    # 1. address map: every "service:port" and each service's own "0.0.0.0:port" -> 127.0.0.1:free
    addr = {}
    text = open(COMPOSE).read() + "".join(
        open(os.path.join(base, f)).read() for f in os.listdir(base) if f.endswith((".yml", ".yaml")))
    for name in services:
        for port in set(re.findall(rf"\b{re.escape(name)}:(\d+)\b", text)):
            addr[f"{name}:{port}"] = f"127.0.0.1:{mc.free_port()}"
    own = {}
    for name, svc in services.items():
        own[name] = {}
        cmd = " ".join(map(str, svc.get("command") or []))
        for port in re.findall(r"0\.0\.0\.0:(\d+)", cmd):
            own[name][port] = addr.setdefault(f"{name}:{port}", f"127.0.0.1:{mc.free_port()}")
    # gait's admin listener port appears in its mounted config, not its command line
    for port in re.findall(r"0\.0\.0\.0:(\d+)", open(os.path.join(base, "gait-config.yaml")).read()):
        own["gait"][port] = addr.setdefault(f"gait:{port}", f"127.0.0.1:{mc.free_port()}")
    if "prometheus" in services:
        own["prometheus"].setdefault("9090", addr.setdefault("prometheus:9090", f"127.0.0.1:{mc.free_port()}"))
        addr["localhost:9090"] = own["prometheus"]["9090"]

    # 2. per-service path map (container path -> host path), rewritten copies of mounted configs
    subs_log = []

    def rewrite(s, name, paths):
        pairs = []

        def note(old, new):
            if old != new:
                pairs.append(f"{old} -> {new}")
            return new

        out = interpolate(str(s), env)
        for port, a in own.get(name, {}).items():
            out = re.sub(rf"0\.0\.0\.0:{port}\b", lambda m, a=a: note(m.group(0), a), out)
        for k, a in addr.items():
            out = re.sub(rf"(?<![\w.-]){re.escape(k)}\b", lambda m, a=a: note(m.group(0), a), out)
        if paths:  # one pass, longest first, so a substituted host path is never rewritten again
            alt = "|".join(re.escape(c) for c in sorted(paths, key=len, reverse=True))
            out = re.sub(rf"(?<![\w/])({alt})(?=$|[/\s\"',:])", lambda m: note(m.group(1), paths[m.group(1)]), out)
        for pair in dict.fromkeys(pairs):
            subs_log.append(f"{name}: {pair}")
        return out

    plans = {}
    for name in toposort(services):
        svc = services[name]
        paths, files = {}, []
        for vol in svc.get("volumes") or []:
            src, dst = vol.split(":")[:2]
            if src.startswith("."):
                files.append((os.path.normpath(os.path.join(base, src)), dst))
            else:
                paths[dst] = H.dir("volumes", name, src)
        for sec in svc.get("secrets") or []:
            sname = sec if isinstance(sec, str) else sec["source"]
            target = sec if isinstance(sec, str) else sec.get("target", sname)
            spec = doc["secrets"][sname]
            value = env[spec["environment"]] if "environment" in spec else open(os.path.join(base, spec["file"])).read()
            paths[f"/run/secrets/{target}"] = H.write(os.path.join(H.dir("secrets", name), target), value)
        for tmp in svc.get("tmpfs") or []:
            paths[tmp] = H.dir("tmpfs", name, tmp.strip("/").replace("/", "_"))
        plans[name] = (paths, files)

    for name, (paths, files) in plans.items():
        named = dict(paths)
        for host, dst in files:
            # a file mounted inside a named volume lands inside that volume's temp dir
            parent = next((c for c in sorted(named, key=len, reverse=True) if dst.startswith(c + "/")), None)
            paths[dst] = (os.path.join(named[parent], os.path.relpath(dst, parent)) if parent else
                          os.path.join(H.dir("mounts", name), dst.strip("/").replace("/", "__")))
        for host, dst in files:
            content = open(host).read()
            if host.endswith((".yml", ".yaml")):
                content = rewrite(content, name, paths)
            H.write(paths[dst], content)

    # 3. start in dependency order
    procs = {}
    for name in toposort(services):
        svc = services[name]
        paths, _ = plans[name]
        argv = binary_for(svc) + [rewrite(a, name, paths) for a in (svc.get("command") or [])]
        if "prometheus" in argv[0]:
            argv = [a for a in argv if not a.startswith("--web.listen-address")]
            argv.append(f"--web.listen-address={own['prometheus']['9090']}")
        cwd = rewrite(svc.get("working_dir", H.root), name, paths) if svc.get("working_dir") else H.root
        os.makedirs(cwd, exist_ok=True)
        proc_env = {k: interpolate(str(v), env) for k, v in (svc.get("environment") or {}).items()}
        p = H._spawn(name, argv, cwd=cwd, env=proc_env)
        procs[name] = p
        listen = next(iter(own.get(name, {}).values()), None)
        if listen:
            p.port = int(listen.rsplit(":", 1)[1])
            probe = {"prometheus": "/-/ready"}.get(name, "/healthz")
            if not mc.wait_http(p.base + probe, 30):
                H.check(f"service_{name}_starts", False, f"{' '.join(argv)} :: {p.log(600)}")
                return H.finish()
        H.check(f"service_{name}_starts", p.alive(), p.log(300))
    for line in dict.fromkeys(subs_log):
        H.info("substituted " + line[:300])

    tok = env["GAIT_MCP_TOKEN"]
    gait = procs["gait"]
    for tool_server in ("tools-a", "tools-b"):
        url = gait.url(f"/mcp/{tool_server}")
        try:
            s = mc.Session(url, token=tok)
            s.initialize()
            rid, r = s.rpc("tools/list", {})
            names = [t["name"] for t in (r.reply(rid) or {}).get("result", {}).get("tools", [])]
            H.check(f"gateway_lists_{tool_server}_tools", "echo" in names, f"{r!r}")
            rid, r = s.call("echo", {"text": tool_server})
            counts = {n: procs[n].tool_count("echo") for n in ("tools-a", "tools-b")}
            H.check(f"gateway_routes_to_{tool_server}", mc.call_result_ok(r, rid) and counts[tool_server] >= 1,
                    f"{r!r} counts={counts}")
            rid, r = s.call("delete_file", {"path": "/"})
            H.check(f"gateway_blocks_delete_on_{tool_server}",
                    r.status == 403 and mc.is_jsonrpc_error(r, rid) and procs[tool_server].tool_count("delete_file") == 0,
                    f"{r!r}")
        except Exception as e:  # noqa: BLE001
            H.check(f"gateway_routes_to_{tool_server}", False, f"{type(e).__name__}: {e}")
    r = mc.request(gait.url("/mcp/tools-a"), "POST", {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                   {"Content-Type": "application/json", "Accept": mc.ACCEPT})
    H.check("gateway_requires_token", r.status == 401, f"HTTP {r.status}")

    metrics_addr = own["gait"].get("9464")
    if metrics_addr:
        m_url = f"http://{metrics_addr}/metrics"
        try:
            r0 = mc.request(m_url)
            r1 = mc.request(m_url, headers={"Authorization": f"Bearer {env['GAIT_METRICS_TOKEN']}"})
            H.check("metrics_listener_requires_token", r0.status == 401 and r1.status == 200,
                    f"without token HTTP {r0.status}, with token HTTP {r1.status}")
        except OSError as e:
            H.check("metrics_listener_requires_token", False, f"{m_url}: {e}")

    prom = procs.get("prometheus")
    if prom:
        q = urllib.parse.quote('up{job="gait"}')
        deadline = time.monotonic() + 45
        last = None
        while time.monotonic() < deadline:
            try:
                res = mc.request(prom.url(f"/api/v1/query?query={q}"), timeout=3).json()
                vals = [float(x["value"][1]) for x in res["data"]["result"]]
                last = vals
                if vals and vals[0] == 1.0:
                    break
            except Exception as e:  # noqa: BLE001
                last = repr(e)
            time.sleep(1)
        H.check("prometheus_scrapes_gait_up", last == [1.0], f"up{{job=\"gait\"}} = {last} after 45 s")
        q = urllib.parse.quote('count({job="gait",__name__=~"gait_.+"})')
        try:
            res = mc.request(prom.url(f"/api/v1/query?query={q}"), timeout=3).json()
            n = int(float(res["data"]["result"][0]["value"][1])) if res["data"]["result"] else 0
        except Exception as e:  # noqa: BLE001
            n = repr(e)
        H.check("prometheus_has_gait_series", isinstance(n, int) and n > 0, f"{n} gait_* series")
    for name, p in procs.items():
        H.check(f"service_{name}_still_running", p.alive(), p.log(300))
    return H.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001
        H.check("compose_local_ran", False, f"{type(e).__name__}: {e}")
        sys.exit(H.finish())
