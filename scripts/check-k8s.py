#!/usr/bin/env python3
"""Checks rendered deploy/k8s manifests (a YAML stream on stdin) against the binary they run:
   - every env name of the imgbind container is one `imgbind serve --help` lists, and every
     `--flag` in its args is one it lists; args start with a subcommand `imgbind --help` lists;
   - every port agrees: IMGBIND_LISTEN's port is the container's `http` port, probes and the
     Service and NetworkPolicy reach that port by name or number, probe paths are /healthz or
     /readyz (and readiness is /readyz);
   - the pod runs as the Containerfile's USER, non-root, on a read-only root filesystem, and its
     grace period is longer than the shutdown delay + shutdown timeout it is given;
   - the HPA and PDB point at this Deployment's pods.
Usage: kubectl kustomize deploy/k8s | check-k8s.py BINARY CONTAINERFILE_JSON
Exits 1 with one line per problem. Needs PyYAML (kubernetes-validate brings it)."""
import json
import re
import subprocess
import sys

import yaml

binary, image_json = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
image = json.load(open(image_json))
top_help = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
serve_help = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True, check=True).stdout
known_env = set(re.findall(r"\[env: (IMGBIND_[A-Z0-9_]+)[=\]]", serve_help))
known_flags = set(re.findall(r"(--[a-z][a-z0-9-]*)", serve_help))
subcommands = set(re.findall(r"^  ([a-z]+)\s{2,}", top_help, re.M))
problems = []


def problem(text):
    problems.append(text)


def duration_s(text):
    match = re.fullmatch(r"(\d+)(ms|s|m)?", text)
    if not match:
        problem(f"cannot read the duration {text!r}")
        return 0
    n, unit = int(match.group(1)), match.group(2) or "s"
    return n / 1000 if unit == "ms" else n * 60 if unit == "m" else n


def by_kind(kind):
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        problem(f"expected one {kind}, found {len(found)}")
        return {}
    return found[0]


deployment = by_kind("Deployment")
service = by_kind("Service")
pdb = by_kind("PodDisruptionBudget")
hpa = by_kind("HorizontalPodAutoscaler")
policy = by_kind("NetworkPolicy")
pod = deployment.get("spec", {}).get("template", {})
pod_labels = pod.get("metadata", {}).get("labels", {})
pod_spec = pod.get("spec", {})
containers = [c for c in pod_spec.get("containers", []) if c.get("name") == "imgbind"]
if len(containers) != 1:
    problem("the Deployment has no container named imgbind")
    container = {}
else:
    container = containers[0]

# --- names the binary knows --------------------------------------------------------------------
env = {}
for item in container.get("env", []):
    name = item.get("name", "")
    env[name] = item.get("value")
    if name.startswith("IMGBIND_") and name not in known_env:
        problem(f"env {name} is not a variable `imgbind serve --help` knows")
args = container.get("args", [])
if not args or args[0] not in subcommands:
    problem(f"args {args} do not start with a subcommand of imgbind ({sorted(subcommands)})")
for arg in args[1:]:
    flag = arg.split("=", 1)[0]
    if flag.startswith("--") and flag not in known_flags:
        problem(f"flag {flag} is not one `imgbind serve --help` knows")

# --- ports -------------------------------------------------------------------------------------
ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
http = ports.get("http")
if http is None:
    problem("the container has no port named http")
listen = env.get("IMGBIND_LISTEN") or ""
listen_port = int(listen.rsplit(":", 1)[1]) if ":" in listen else None
if listen_port != http:
    problem(f"IMGBIND_LISTEN={listen!r} does not listen on the http port {http}")
if listen and not listen.startswith(("0.0.0.0:", "[::]:")):
    problem(f"IMGBIND_LISTEN={listen!r} is not reachable from outside the pod")
if image["expose"] and http not in image["expose"]:
    problem(f"the http port {http} is not the Containerfile's EXPOSE {image['expose']}")


def reaches(port, where):
    if port not in ("http", http):
        problem(f"{where} uses port {port!r}, not the container's http port ({http})")


for name in ("readinessProbe", "livenessProbe", "startupProbe"):
    probe = container.get(name)
    if not probe:
        if name != "startupProbe":
            problem(f"no {name}")
        continue
    get = probe.get("httpGet", {})
    reaches(get.get("port"), name)
    if get.get("path") not in ("/healthz", "/readyz"):
        problem(f"{name} asks for {get.get('path')!r}, which imgbind does not serve")
if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
    problem("readiness must be /readyz (it fails at SIGTERM; /healthz does not)")
if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
    problem("liveness must be /healthz (/readyz fails during a normal shutdown)")
for port in service.get("spec", {}).get("ports", []):
    reaches(port.get("targetPort"), "the Service")
for rule in policy.get("spec", {}).get("ingress", []):
    for port in rule.get("ports", []):
        reaches(port.get("port"), "the NetworkPolicy")

# --- selectors ---------------------------------------------------------------------------------
def selects(selector, where):
    if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
        problem(f"{where} selector {selector} does not match the pod labels {pod_labels}")


selects(deployment.get("spec", {}).get("selector", {}).get("matchLabels"), "the Deployment's")
selects(service.get("spec", {}).get("selector"), "the Service's")
selects(pdb.get("spec", {}).get("selector", {}).get("matchLabels"), "the PodDisruptionBudget's")
selects(policy.get("spec", {}).get("podSelector", {}).get("matchLabels"), "the NetworkPolicy's")
target = hpa.get("spec", {}).get("scaleTargetRef", {})
if (target.get("kind"), target.get("name")) != ("Deployment", deployment.get("metadata", {}).get("name")):
    problem(f"the HPA scales {target}, not this Deployment")

# --- security and shutdown ---------------------------------------------------------------------
uid, gid = (int(x) for x in image["user"].split(":"))
pod_security = pod_spec.get("securityContext", {})
if pod_security.get("runAsNonRoot") is not True or pod_security.get("runAsUser") != uid:
    problem(f"the pod must run as non-root uid {uid} (the Containerfile's USER)")
security = container.get("securityContext", {})
if security.get("readOnlyRootFilesystem") is not True:
    problem("the root filesystem must be read-only")
if security.get("allowPrivilegeEscalation") is not False:
    problem("allowPrivilegeEscalation must be false")
delay = duration_s(env.get("IMGBIND_SHUTDOWN_DELAY") or "0")
drain = duration_s(env.get("IMGBIND_SHUTDOWN_TIMEOUT") or "30s")
grace = pod_spec.get("terminationGracePeriodSeconds", 30)
if grace <= delay + drain:
    problem(f"terminationGracePeriodSeconds {grace} must exceed shutdown delay {delay} + drain {drain}")
if delay < 1:
    problem("without a shutdown delay, requests routed before the endpoint is removed are refused")
limits = container.get("resources", {}).get("limits", {})
if "memory" not in limits or "cpu" not in limits:
    problem("the container needs cpu and memory limits (the budget and --jobs follow them)")

for text in problems:
    print(f"check-k8s: {text}")
if problems:
    sys.exit(1)
print(f"check-k8s: ok ({len(docs)} objects; env {sorted(env)}; port {http})")
