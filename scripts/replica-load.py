#!/usr/bin/env python3
"""Load driver for scripts/test-replicas.sh: C client threads POST one multipart /transform body
to a loopback URL for S seconds over keep-alive connections and check every answer (200,
image/webp, a RIFF/WEBP body of exactly Content-Length bytes). Prints one JSON line:
{"ok", "failed", "errors": {reason: count}, "rps", "p50_ms", "p99_ms", "max_ms"}.
Usage: replica-load.py HOST PORT BODY_FILE BOUNDARY SECONDS CONCURRENCY"""
import http.client
import json
import sys
import threading
import time

host, port, body_file, boundary = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
seconds, concurrency = float(sys.argv[5]), int(sys.argv[6])
body = open(body_file, "rb").read()
headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
lock = threading.Lock()
latencies, errors = [], {}
deadline = time.monotonic() + seconds


def client():
    conn = None
    while time.monotonic() < deadline:
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=60)
        started = time.monotonic()
        reason = None
        try:
            conn.request("POST", "/transform", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                reason = f"status {response.status} {data[:60]!r}"
            elif response.getheader("content-type") != "image/webp":
                reason = "content-type " + str(response.getheader("content-type"))
            elif not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
                reason = "not a WebP body"
            elif response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as error:  # a reset, a short body, a timeout: all failures
            reason = type(error).__name__
            conn.close()
            conn = None
        elapsed = time.monotonic() - started
        with lock:
            if reason is None:
                latencies.append(elapsed)
            else:
                errors[reason] = errors.get(reason, 0) + 1


threads = [threading.Thread(target=client) for _ in range(concurrency)]
began = time.monotonic()
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
wall = time.monotonic() - began
latencies.sort()


def pct(p):
    return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else None


print(json.dumps({
    "ok": len(latencies),
    "failed": sum(errors.values()),
    "errors": errors,
    "rps": round(len(latencies) / wall, 2),
    "p50_ms": pct(0.50),
    "p99_ms": pct(0.99),
    "max_ms": round(1000 * latencies[-1], 1) if latencies else None,
}))
