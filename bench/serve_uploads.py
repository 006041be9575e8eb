"""Memory of `styledistill serve` under concurrent oversized uploads, on loopback only.

Starts the page (sttr-small, random weights, as the demo serves it) on 127.0.0.1,
sends N concurrent requests whose content is a small PNG declaring 20000x20000 pixels
(388 KB: deflate of a blank greyscale image), then one normal request and one text
file posing as an image. Prints the server's resident memory (baseline, peak) and what
each request got back. Bounded: N + 2 requests, one server, --timeout seconds in all.

    .venv/bin/python bench/serve_uploads.py              # 8 uploads of 20000x20000
    .venv/bin/python bench/serve_uploads.py --uploads 8 --side 20000 --json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from pathlib import Path


def write_blank_png(path: Path, width: int, height: int, level: int = 9) -> Path:
    """A greyscale PNG of ``width`` x ``height`` zeros, streamed (never held in memory)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    compressor = zlib.compressobj(level)
    row = bytes(1 + width)  # filter byte + one row of black pixels
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        fh.write(chunk(b"IDAT", b"".join(parts)))
        fh.write(chunk(b"IEND", b""))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def _tree_pids(pid: int) -> list[int]:
    """The server and its children (Gradio runs in-process, but be safe)."""
    pids = [pid]
    try:
        for child in Path(f"/proc/{pid}/task").iterdir():
            children = (child / "children").read_text().split()
            pids += [int(c) for c in children]
    except OSError:
        pass
    return pids


class _RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                total = sum(_rss_kib(p) for p in _tree_pids(self.pid))
            except (OSError, RuntimeError):
                break
            self.peak = max(self.peak, total)
            time.sleep(self.every)


def _make_student(folder: Path) -> Path:
    import torch

    from styledistill.student import STTR

    torch.manual_seed(0)
    STTR.from_preset("sttr-small").save_pretrained(folder)
    return folder


def _wait_for(url: str, process: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"server at {url} did not answer in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=8, help="concurrent oversized uploads")
    parser.add_argument("--side", type=int, default=20000, help="declared width and height")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for everything")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if not 1 <= args.uploads <= 32:
        parser.error("--uploads: 1 to 32")
    deadline = time.monotonic() + args.timeout

    from gradio_client import Client, handle_file
    from PIL import Image

    from styledistill.benchmark import machine_line

    work = Path(tempfile.mkdtemp(prefix="serve-uploads-"))
    bomb = write_blank_png(work / "huge.png", args.side, args.side)
    Image.new("RGB", (96, 64), (40, 120, 200)).save(work / "content.png")
    Image.effect_noise((64, 64), 40).convert("RGB").save(work / "style.png")
    (work / "notes.png").write_text("this is a text file, not an image\n")
    student = _make_student(work / "student")

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "styledistill", "serve", str(student)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-samples", "--size", "128"]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    log_path = work / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    result: dict = {}
    try:
        _wait_for(url, server, deadline)
        client = Client(url, verbose=False)
        baseline = _rss_kib(server.pid)
        sampler = _RssSampler(server.pid)
        sampler.start()

        def send(content: Path, style: Path) -> tuple[str, float]:
            start = time.perf_counter()
            try:
                client.predict(handle_file(str(content)), handle_file(str(style)), api_name="/run")
                outcome = "stylized"
            except Exception as exc:  # the page's refusal arrives as an AppError
                outcome = f"refused: {exc}".splitlines()[0]
            return outcome, time.perf_counter() - start

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.uploads) as pool:
            futures = [pool.submit(send, bomb, work / "style.png") for _ in range(args.uploads)]
            left = max(1.0, deadline - time.monotonic())
            oversized = [f.result(timeout=left) for f in futures]
        oversized_seconds = time.perf_counter() - start
        normal = send(work / "content.png", work / "style.png")
        text_file = send(work / "notes.png", work / "style.png")
        sampler.stop.set()
        sampler.join()
        peak_hwm = _rss_kib(server.pid, "VmHWM")
        result = {
            "machine": machine_line(),
            "upload_bytes": bomb.stat().st_size,
            "declared": f"{args.side}x{args.side}",
            "uploads": args.uploads,
            "baseline_rss_mib": round(baseline / 1024, 1),
            "peak_rss_mib_sampled": round(sampler.peak / 1024, 1),
            "peak_rss_mib_vmhwm": round(peak_hwm / 1024, 1),
            "oversized_seconds_all": round(oversized_seconds, 2),
            "oversized_outcomes": sorted({o for o, _ in oversized}),
            "normal_request": normal[0],
            "normal_seconds": round(normal[1], 2),
            "text_file": text_file[0],
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    log_text = log_path.read_text(errors="replace")
    shutil.rmtree(work, ignore_errors=True)
    result["server_log_tracebacks"] = log_text.count("Traceback")
    result["server_log_refusals"] = sum(
        1 for line in log_text.splitlines() if "styledistill serve: refused" in line
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    ok = (
        result.get("peak_rss_mib_vmhwm", 1e9) < 1536
        and result.get("normal_request") == "stylized"
        and result["server_log_tracebacks"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
