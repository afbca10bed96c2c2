#!/usr/bin/env python3
"""Reads the runtime stage (the last FROM) of deploy/Containerfile and prints what a container
runtime takes from it, as JSON: user, env, entrypoint, cmd, healthcheck, expose. Only the forms the
Containerfile uses are understood (JSON-array ENTRYPOINT/CMD/HEALTHCHECK CMD, KEY=VALUE ENV);
anything else is an error, so the runc bundle in scripts/test-container.sh cannot silently drift
from the image."""
import json
import re
import shlex
import sys

path = sys.argv[1]
lines, current = [], ""
for raw in open(path, encoding="utf-8"):
    line = raw.rstrip("\n")
    if not current and (not line.strip() or line.lstrip().startswith("#")):
        continue
    if line.endswith("\\"):
        current += line[:-1] + " "
        continue
    lines.append((current + line).strip())
    current = ""

stage = []
for line in lines:
    if line.upper().startswith("FROM "):
        stage = []
    stage.append(line)

out = {"user": None, "env": {}, "entrypoint": None, "cmd": None, "healthcheck": None, "expose": []}
for line in stage:
    word, _, rest = line.partition(" ")
    word, rest = word.upper(), rest.strip()
    if word == "USER":
        out["user"] = rest
    elif word == "ENV":
        for pair in shlex.split(rest):
            key, eq, value = pair.partition("=")
            if not eq:
                sys.exit(f"{path}: ENV {pair!r} is not KEY=VALUE")
            out["env"][key] = value
    elif word in ("ENTRYPOINT", "CMD"):
        out[word.lower()] = json.loads(rest)
    elif word == "HEALTHCHECK":
        match = re.search(r"\bCMD\s+(\[.*\])\s*$", rest)
        if not match:
            sys.exit(f"{path}: HEALTHCHECK must be `... CMD [json array]`")
        out["healthcheck"] = json.loads(match.group(1))
    elif word == "EXPOSE":
        out["expose"] += [int(p.split("/")[0]) for p in rest.split()]
for key in ("user", "entrypoint", "cmd", "healthcheck"):
    if out[key] is None:
        sys.exit(f"{path}: the runtime stage has no {key.upper()}")
json.dump(out, sys.stdout)
