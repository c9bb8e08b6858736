"""Load test of `convnets serve`: requests/s and latency with and without dynamic batching.

Starts two servers of the same run on loopback ports, one batching (``--max-batch 32``)
and one not (``--max-batch 1``), and sends each the test digits as PNG uploads from 1, 8
and 32 concurrent clients (threads, one keep-alive connection each). Rounds alternate
between the two servers (A B A B ...) so that both meet the same machine load, and each
figure is the median over ``--rounds``. Every round is bounded: ``--requests`` requests
or ``--seconds`` seconds, whichever ends first. Loopback only.

    python benchmarks/serve_load.py RUN_DIR [--rounds 3] [--requests 160] [--seconds 15]
"""
from __future__ import annotations

import argparse
import http.client
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


class Server:
    def __init__(self, target: str, max_batch: int, log_dir: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.path.abspath(SRC)}
        self.log = open(os.path.join(log_dir, f"serve-{max_batch}.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "convnets", "serve", target, "--host", "127.0.0.1",
             "--port", "0", "--max-batch", str(max_batch), "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=self.log, env=env)
        line = self.proc.stdout.readline().decode()
        if "http://" not in line:
            raise SystemExit(f"the server did not start (see {self.log.name}): {line!r}")
        self.port = int(line.split()[3].rstrip("/").rsplit(":", 1)[1])

    def stats(self) -> dict:
        import json

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", "/healthz")
        out = json.loads(conn.getresponse().read())
        conn.close()
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def _multipart(data: bytes) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


def load(port: int, bodies: list[tuple[bytes, str]], clients: int, requests: int,
         seconds: float) -> dict:
    """``clients`` threads send until ``requests`` have been sent or ``seconds`` passed."""
    latencies: list[float] = []
    lock = threading.Lock()
    sent = [0]
    failures = [0]
    start = time.perf_counter()
    deadline = start + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = k
        while time.perf_counter() < deadline:
            with lock:
                if sent[0] >= requests:
                    break
                sent[0] += 1
            body, ctype = bodies[i % len(bodies)]
            i += clients
            t0 = time.perf_counter()
            conn.request("POST", "/v1/predict?topk=1", body, {"Content-Type": ctype})
            r = conn.getresponse()
            r.read()
            t1 = time.perf_counter()
            with lock:
                if r.status == 200:
                    latencies.append(t1 - t0)
                else:
                    failures[0] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {"rps": len(latencies) / wall, "p50": pct(0.50), "p99": pct(0.99),
            "done": len(latencies), "failed": failures[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", help="run directory (or weights/model) to serve")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=160, help="per round and setting")
    ap.add_argument("--seconds", type=float, default=15.0, help="per round and setting")
    ap.add_argument("--clients", default="1,8,32")
    args = ap.parse_args()
    levels = [int(c) for c in args.clients.split(",")]

    from convnets.data.export import export_images

    with tempfile.TemporaryDirectory() as tmp:
        export_images("digits", os.path.join(tmp, "png"), split="test", per_class=4)
        paths = sorted(os.path.join(r, f) for r, _, fs in os.walk(os.path.join(tmp, "png"))
                       for f in fs)
        bodies = [_multipart(open(p, "rb").read()) for p in paths]
        servers = {32: Server(args.target, 32, tmp), 1: Server(args.target, 1, tmp)}
        try:
            for s in servers.values():  # warm up: first passes allocate and pick kernels
                load(s.port, bodies, 4, 16, 30)
            results: dict = {(b, c): [] for b in servers for c in levels}
            passes: dict = {(b, c): [] for b in servers for c in levels}
            for r in range(args.rounds):
                for c in levels:
                    for b, s in servers.items():  # A B A B: both see the same load
                        before = s.stats()
                        res = load(s.port, bodies, c, args.requests, args.seconds)
                        after = s.stats()
                        results[(b, c)].append(res)
                        n = after["forward_passes"] - before["forward_passes"]
                        passes[(b, c)].append((after["images"] - before["images"]) / max(n, 1))
                        print(f"round {r + 1} max-batch {b:>2} clients {c:>2}: "
                              f"{res['rps']:.1f} req/s, p50 {res['p50']:.0f} ms, "
                              f"p99 {res['p99']:.0f} ms, {res['done']} done, "
                              f"{res['failed']} failed", file=sys.stderr, flush=True)
        finally:
            for s in servers.values():
                s.stop()

    med = statistics.median
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"Python {platform.python_version()}; target {args.target}; medians of "
          f"{args.rounds} rounds of at most {args.requests} requests / {args.seconds:g} s\n")
    print("| clients | max-batch | requests/s | p50 ms | p99 ms | images per pass | "
          "req/s batched / unbatched |")
    print("|---|---|---|---|---|---|---|")
    for c in levels:
        for b in servers:
            rs = results[(b, c)]
            ratio = med([x["rps"] / y["rps"] for x, y in zip(results[(32, c)], results[(1, c)])])
            print(f"| {c} | {b} | {med(x['rps'] for x in rs):.1f} | "
                  f"{med(x['p50'] for x in rs):.0f} | {med(x['p99'] for x in rs):.0f} | "
                  f"{med(passes[(b, c)]):.1f} | {f'{ratio:.2f}' if b == 32 else ''} |")


if __name__ == "__main__":
    main()
