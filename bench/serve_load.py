"""The viewer under load: N clients on this machine send their request at the same moment
(a barrier), each on its own connection, to a viewer on 127.0.0.1. Counts what was served,
reset or failed, and the latency percentiles (from the barrier to the last byte of the answer).

    OMP_NUM_THREADS=1 python bench/serve_load.py --requests 100 --rounds 3            # a tiny untrained model
    OMP_NUM_THREADS=1 python bench/serve_load.py --run runs/quick --requests 100 --kind traverse

Loopback only, bounded in count (requests x rounds) and in time (--timeout per request): it
stops by itself. The test tests/serve/test_load.py runs `load` once with 100 requests.
"""
from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"


def make_untrained_run(run_dir: Path) -> Path:
    """A 16x16 run (the tiny preset) with a snapshot of its initial networks: what the viewer
    loads, without training (the load test measures the server, not the model)."""
    from semistylegan.config import make_config
    from semistylegan.train import Trainer

    trainer = Trainer(make_config("tiny", grid_kimg=0.0), run_dir, progress=False)
    trainer.run_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_snapshot()
    return run_dir


def _one(port: int, kind: str, body: bytes, timeout: float, start: threading.Barrier, out: list, i: int):
    path = {"render": "/api/render", "traverse": "/api/traverse", "info": "/api/info"}[kind]
    try:
        start.wait(timeout)
    except threading.BrokenBarrierError:
        out[i] = ("error", 0.0, "barrier broken")
        return
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if kind == "info":
            conn.request("GET", path)
        else:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        ms = (time.perf_counter() - t0) * 1000
        ok = resp.status == 200 and (kind == "info" or json.loads(data).get("image", "").startswith("data:image/png"))
        out[i] = ("ok" if ok else "error", ms, "" if ok else f"{resp.status} {data[:120]!r}")
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as e:
        out[i] = ("reset", (time.perf_counter() - t0) * 1000, type(e).__name__)
    except Exception as e:  # a timeout, a refused connection, a malformed answer
        out[i] = ("error", (time.perf_counter() - t0) * 1000, f"{type(e).__name__}: {str(e)[:120]}")
    finally:
        conn.close()


def load(port: int, num_factors: int, requests: int = 100, kind: str = "render", timeout: float = 60.0) -> dict:
    """`requests` simultaneous requests to a viewer on 127.0.0.1:port; each asks for its own seed."""
    start = threading.Barrier(requests)
    out: list = [None] * requests
    threads = []
    for i in range(requests):
        body = {"codes": [0.5] * num_factors, "seed": i, "psi": 1.0}
        if kind == "traverse":
            body["steps"] = 4
        t = threading.Thread(target=_one, args=(port, kind, json.dumps(body).encode(), timeout, start, out, i),
                             daemon=True)
        t.start()
        threads.append(t)
    deadline = time.monotonic() + 2 * timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    results = [r if r is not None else ("error", 0.0, "client thread did not finish") for r in out]
    ms = np.array([r[1] for r in results if r[0] == "ok"])
    return {
        "requests": requests, "kind": kind,
        "served": sum(r[0] == "ok" for r in results),
        "reset": sum(r[0] == "reset" for r in results),
        "errors": sum(r[0] == "error" for r in results),
        "first_problems": sorted({r[2] for r in results if r[0] != "ok"})[:3],
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "max_ms": round(float(ms.max()), 1) if len(ms) else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=None, help="run directory to serve (default: a tiny untrained model)")
    ap.add_argument("--requests", type=int, default=100, help="simultaneous requests per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kind", default="render", choices=["render", "traverse", "info"])
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = ap.parse_args()
    if not (1 <= args.requests <= 1000 and 1 <= args.rounds <= 100):
        ap.error("--requests must be in [1, 1000] and --rounds in [1, 100]")

    from semistylegan.editing import load_editor
    from semistylegan.serve import make_server

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run) if args.run else make_untrained_run(Path(tmp) / "run")
        editor = load_editor(run_dir)
        server = make_server(editor, HOST, 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            rows = [load(port, len(editor.names), args.requests, args.kind, args.timeout) for _ in range(args.rounds)]
        finally:
            server.shutdown()
            server.server_close()
    for i, row in enumerate(rows):
        print(json.dumps({"round": i, **row}))
    print(json.dumps({"total_requests": sum(r["requests"] for r in rows), "served": sum(r["served"] for r in rows),
                      "reset": sum(r["reset"] for r in rows), "errors": sum(r["errors"] for r in rows),
                      "p50_ms_median": float(np.median([r["p50_ms"] for r in rows if r["p50_ms"] is not None])),
                      "p99_ms_max": max(r["p99_ms"] for r in rows if r["p99_ms"] is not None)}))


if __name__ == "__main__":
    main()
