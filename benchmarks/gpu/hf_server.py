"""The real server under test: `transformers serve` (continuous batching, streaming chat), offline.

The random-weight model is built by `scripts/build_tiny_model.py` straight into a private Hugging
Face hub cache (`<work>/hf-cache/models--inferprof--random-llama/snapshots/<40 zeros>`, `refs/main`),
so the server loads it by repo id with HF_HUB_OFFLINE=1 and lists it on /v1/models (transformers
serve lists the models of its cache there, and inferprof checks the model it is given is listed).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVED = "inferprof/random-llama"
REVISION = "0" * 40
# Nothing may reach the network: hub downloads, the CLI's PyPI update check, telemetry pings.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false",
}
SERVING_MODULES = ("torch", "transformers", "fastapi", "uvicorn", "pydantic", "openai", "accelerate")


def snapshot_dir(hf_cache: Path) -> Path:
    """The model folder inside the private hub cache (refs/main written beside it)."""
    repo = hf_cache / ("models--" + SERVED.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    snap = repo / "snapshots" / REVISION
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def server_env(hf_cache: Path, site: Path | None, extra_path: str = "") -> dict[str, str]:
    """The server's environment: offline, the private cache, carried packages first on the path."""
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    env["HF_HUB_CACHE"] = str(hf_cache)
    env["HF_HOME"] = str(hf_cache.parent / "hf-home")
    path = [p for p in (str(site) if site else "", extra_path) if p]
    if path:
        env["PYTHONPATH"] = os.pathsep.join(path)
    else:
        env.pop("PYTHONPATH", None)
    return env


def install_wheels(python: str, wheels: Path, site: Path) -> str:
    """pip-install every carried wheel into `site` (no index, no network); returns a one-line note."""
    files = sorted(str(p) for p in wheels.glob("*.whl"))
    if not files:
        return f"no wheels in {wheels}"
    cmd = [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
           "--upgrade", "--target", str(site), *files]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"pip install of carried wheels failed: {p.stderr.strip()[-600:]}")
    return f"installed {len(files)} wheels from {wheels} into {site}"


def probe(python: str, env: dict[str, str]) -> dict:
    """Versions of the serving stack as the server's Python sees it; `missing` lists absent modules."""
    # metadata only: importing torch here would cost as much as the server's own start
    code = (
        "import importlib.metadata as md, importlib.util, json, sys\n"
        f"mods = {SERVING_MODULES!r}\n"
        "out = {'python': sys.version.split()[0], 'missing': [m for m in mods if importlib.util.find_spec(m) is None]}\n"
        "for m in mods:\n"
        "    if m not in out['missing']:\n"
        "        try: out[m] = md.version(m)\n"
        "        except Exception: out[m] = '?'\n"
        "print(json.dumps(out))\n"
    )
    p = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=180,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        return {"missing": list(SERVING_MODULES), "error": p.stderr.strip()[-400:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def build_model(python: str, snap: Path, preset: str, device: str, env: dict[str, str], timeout_s: float) -> dict:
    """Random-weight model + tokenizer into `snap` (scripts/build_tiny_model.py); its JSON line."""
    cmd = [python, str(REPO / "scripts" / "build_tiny_model.py"), str(snap), "--preset", preset, "--device", device]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"model build failed: {p.stderr.strip()[-800:]}")
    return json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])


def copy_model(src: Path, snap: Path) -> dict:
    """A model built earlier (config, weights, tokenizer files) copied into `snap`."""
    if not (src / "config.json").is_file() or not (src / "tokenizer.json").is_file():
        raise RuntimeError(f"{src}: no config.json/tokenizer.json (not a built model folder)")
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith("."):
            shutil.copy(f, snap / f.name)
    return {"model": str(snap), "copied_from": str(src)}


def serve_command(python: str, port: int, device: str, dtype: str, cb: dict[str, int]) -> list[str]:
    """`transformers serve` pinned to our model, continuous batching with a bounded KV cache."""
    cmd = [python, "-m", "transformers.cli.transformers", "serve", SERVED, "--continuous-batching",
           "--host", "127.0.0.1", "--port", str(port), "--device", device, "--dtype", dtype, "--log-level", "info"]
    for flag, value in cb.items():
        cmd += [f"--cb-{flag}", str(value)]
    return cmd


class Server:
    """One server process in its own session; `stop()` ends its whole process group."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._fh = open(log, "w")  # noqa: SIM115 - kept open while the server runs
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._fh, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_healthy(self, timeout_s: float) -> float:
        """Seconds until GET /health answered 200; RuntimeError if it died or timed out."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode} during startup: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server not healthy after {timeout_s:.0f} s: {self.tail()}")

    def tail(self, n: int = 1500) -> str:
        self._fh.flush()
        return self.log.read_text(errors="replace")[-n:]

    def stop(self, grace_s: float = 20.0) -> None:
        try:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
        except ProcessLookupError:
            pass  # the group is already gone
        self._fh.close()


def chat_once(url: str, max_tokens: int, timeout_s: float) -> float:
    """One streamed chat request read to the end (warms the server); seconds it took."""
    body = json.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hello warm up"}],
                       "max_tokens": max_tokens, "stream": True}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        while r.read(65536):
            pass
    return time.monotonic() - t0
