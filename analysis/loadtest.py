"""Bounded load test of the Gradio app's ``/segment`` API on loopback.

``python -m analysis.loadtest --clients 4 --requests 40`` starts ``app/gradio_app.py`` on a free
port of 127.0.0.1 (or uses ``--url`` of a running server), sends a fixed number of requests
from several client threads through ``gradio_client``, and prints throughput, p50/p95 latency,
errors and the server's resident memory before, between and after two equal phases of
requests (each request sends a distinct image, so the per-scale cache keeps filling; with the
cache capped in bytes the second phase must not grow memory like the first).
Only loopback addresses are accepted as targets.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PhaseReport:
    """Figures of one phase of requests.

    Attributes:
        requests: requests sent.
        errors: requests that failed (good requests only are sent, so this should be 0).
        seconds: wall time of the phase.
        latencies: per-request seconds.
        rss_after: the server's resident memory after the phase, in bytes (0 if unknown).
    """

    requests: int
    errors: int
    seconds: float
    latencies: tuple[float, ...]
    rss_after: int

    @property
    def throughput(self) -> float:
        """Returns completed requests per second."""
        return (self.requests - self.errors) / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Returns the ``q``-quantile (0..1) of the latencies in seconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class LoadReport:
    """The whole run: a warm-up request, memory before, then two phases.

    Attributes:
        rss_before: server resident memory after start-up and one warm-up request (bytes).
        phases: the two :class:`PhaseReport`.
        errors_seen: the first few error messages.
        warmup: the warm-up phase (one request); its failures count in :attr:`errors`.
    """

    rss_before: int
    phases: tuple[PhaseReport, ...]
    errors_seen: tuple[str, ...] = field(default_factory=tuple)
    warmup: PhaseReport | None = None

    @property
    def errors(self) -> int:
        """Returns the total number of failed requests, the warm-up's included."""
        warm = self.warmup.errors if self.warmup is not None else 0
        return warm + sum(p.errors for p in self.phases)

    def to_markdown(self) -> str:
        """Returns the report as a markdown table (the warm-up's errors in its first row)."""
        mb = 1024 * 1024
        warm = self.warmup
        warm_cells = f"{warm.requests} | {warm.errors}" if warm is not None else " | "
        lines = [
            "| phase | requests | errors | req/s | p50 s | p95 s | server RSS after (MB) |",
            "|---|---|---|---|---|---|---|",
            f"| warm-up | {warm_cells} | | | | {self.rss_before / mb:.0f} |",
        ]
        for i, p in enumerate(self.phases, 1):
            lines.append(
                f"| {i} | {p.requests} | {p.errors} | {p.throughput:.2f} | {p.percentile(0.5):.3f} "
                f"| {p.percentile(0.95):.3f} | {p.rss_after / mb:.0f} |"
            )
        return "\n".join(lines)


def process_rss(pid: int) -> int:
    """Returns the resident memory of process ``pid`` and its children in bytes (Linux; 0 if unknown)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def free_port() -> int:
    """Returns a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_loopback(url: str) -> None:
    """Raises ``ValueError`` unless ``url`` points at a loopback address."""
    host = urlparse(url).hostname or ""
    if host not in ("localhost", "::1") and not host.startswith("127."):
        raise ValueError(f"load tests only target loopback addresses, not {host!r}")


def start_server(port: int, cache_bytes: int, log_path: Path) -> subprocess.Popen:
    """Starts ``app/gradio_app.py`` on 127.0.0.1:``port`` and returns the process."""
    env = dict(os.environ)
    env.update(
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        HMSA_CACHE_BYTES=str(cache_bytes),
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONUNBUFFERED="1",
    )
    log = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "app" / "gradio_app.py")],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_until_up(url: str, proc: subprocess.Popen | None, timeout: float = 120.0) -> None:
    """Waits until the server answers HTTP; raises ``RuntimeError`` if it dies or times out."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} during start-up")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the app did not answer at {url} within {timeout:.0f} s")


def write_images(folder: Path, count: int, size: tuple[int, int], seed: int) -> list[Path]:
    """Writes ``count`` distinct random PNG images of ``size`` (H, W) and returns their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        path = folder / f"load_{seed}_{i}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def run_phase(
    url: str,
    images: Sequence[Path],
    clients: int,
    scales: str,
    errors_seen: list[str],
    pid: int | None,
) -> PhaseReport:
    """Sends one request per image from ``clients`` threads; returns the :class:`PhaseReport`."""
    from gradio_client import Client, handle_file

    queue = list(images)
    lock = threading.Lock()
    latencies: list[float] = []
    errors = 0

    def worker() -> None:
        nonlocal errors
        client = Client(url, verbose=False)
        while True:
            with lock:
                if not queue:
                    return
                path = queue.pop()
            start = time.perf_counter()
            try:
                client.predict(
                    handle_file(str(path)),
                    scales,
                    "hierarchical",
                    "",
                    None,
                    0,
                    api_name="/segment",
                )
                ok = True
            except Exception as exc:
                ok = False
                with lock:
                    if len(errors_seen) < 5:
                        errors_seen.append(f"{type(exc).__name__}: {exc}")
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                errors += 0 if ok else 1

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    rss = process_rss(pid) if pid else 0
    return PhaseReport(len(images), errors, seconds, tuple(latencies), rss)


def run_load_test(
    *,
    clients: int = 4,
    requests: int = 40,
    size: tuple[int, int] = (256, 512),
    scales: str = "0.5, 1, 2",
    url: str | None = None,
    cache_bytes: int = 64 * 1024 * 1024,
) -> LoadReport:
    """Runs the two-phase load test and returns its :class:`LoadReport`.

    Starts the app itself unless ``url`` is given (then server memory is not measured).
    ``requests`` is split evenly between the two phases.
    """
    if clients < 1 or requests < 2:
        raise ValueError("need at least 1 client and 2 requests")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        proc = None
        if url is None:
            url = f"http://127.0.0.1:{free_port()}/"
            proc = start_server(int(urlparse(url).port or 0), cache_bytes, folder / "server.log")
        check_loopback(url)
        try:
            wait_until_up(url, proc)
            errors_seen: list[str] = []
            pid = proc.pid if proc else None
            warm = write_images(folder, 1, size, seed=999)
            warmup = run_phase(url, warm, 1, scales, errors_seen, pid)
            rss_before = warmup.rss_after
            half = requests // 2
            phases = tuple(
                run_phase(
                    url, write_images(folder, half, size, seed=k), clients, scales, errors_seen, pid
                )
                for k in (1, 2)
            )
            return LoadReport(rss_before, phases, tuple(errors_seen), warmup)
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; prints the report and returns 1 if any request failed (warm-up included)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=40, help="total, split over two phases")
    parser.add_argument("--size", default="256x512", help="image size HxW")
    parser.add_argument("--scales", default="0.5, 1, 2")
    parser.add_argument(
        "--url", default=None, help="a running app on loopback (default: start one)"
    )
    parser.add_argument(
        "--cache-mb", type=int, default=64, help="per-scale cache cap of the started app"
    )
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    report = run_load_test(
        clients=args.clients,
        requests=args.requests,
        size=(h, w),
        scales=args.scales,
        url=args.url,
        cache_bytes=args.cache_mb * 1024 * 1024,
    )
    print(report.to_markdown())
    for message in report.errors_seen:
        print("error:", message)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
