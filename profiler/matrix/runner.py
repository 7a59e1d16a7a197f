"""Run a matrix: per server setting start the server, run its sweep cells, stop it; state in
MATRIX_DIR/matrix.json after every step, so a killed matrix resumes (`--resume` skips cells whose
status is "ok" and re-runs the rest). A failed server start marks its cells "failed" with the log
tail and the matrix goes on. With `parallel: N`, N server settings run side by side, each on its
own port (server.port + slot) and, with `gpus_per_cell`, its own CUDA_VISIBLE_DEVICES and NVML
telemetry GPUs.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

import profiler
from profiler.errors import UserError
from profiler.matrix import server as srv
from profiler.matrix.spec import (
    MatrixFile,
    ServerSetting,
    flag_args,
    server_command,
    server_env,
    server_settings,
)

STATE = "matrix.json"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Matrix:
    """A matrix folder and its state; every public method is safe from several worker threads."""

    def __init__(self, folder: Path, spec: MatrixFile, state: dict):
        self.dir, self.spec, self.state = folder, spec, state
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.signum = 0

    # ------------------------------------------------------------ state
    def save(self) -> None:
        with self.lock:
            tmp = self.dir / (STATE + ".tmp")
            tmp.write_text(json.dumps(self.state, indent=2, default=str))
            os.replace(tmp, self.dir / STATE)

    def update(self, kind: str, key: str, **fields) -> None:
        with self.lock:
            self.state[kind].setdefault(key, {}).update(fields)
        self.save()

    def cell_done(self, cell_id: str) -> bool:
        return (self.state["cells"].get(cell_id) or {}).get("status") == "ok"

    # ------------------------------------------------------------ one server setting
    def run_server(self, ss: ServerSetting, slot: int, gpus: list[int]) -> None:
        pending = [(cid, cfg) for cid, cfg in ss.sweeps if not self.cell_done(cid)]
        if not pending or self.stop.is_set():
            return
        port = self.spec.server.port + slot
        env = server_env(self.spec, ss.settings)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
        argv = server_command(self.spec, ss.settings, port)
        sdir = self.dir / "cells" / ss.id
        server = srv.Server(argv, port, self.spec.server.host, sdir / "server.log")
        for cid, cfg in pending:
            self.update("cells", cid, server=ss.id, settings=ss.settings, sweep=cfg, status="waiting", error=None)
        self.update("servers", ss.id, settings=ss.settings, command=argv, env=env, port=port, gpus=gpus,
                    status="starting", error=None, log_tail=None, started_at=_now())
        try:
            facts = self._start(ss.id, server, env)
            self.update("servers", ss.id, status="serving", **facts)
            for cid, cfg in pending:
                if self.stop.is_set():
                    break
                self.run_cell(cid, cfg, server, facts.get("served_model") or "", gpus)
        except srv.ServerFailed as e:
            status = "interrupted" if self.stop.is_set() else "failed"
            self.update("servers", ss.id, status=status, error=str(e), log_tail=e.log_tail)
            for cid, _ in pending:
                if not self.cell_done(cid):
                    self.update("cells", cid, status=status, error=f"server: {e}", log_tail=e.log_tail)
        finally:
            code = server.stop(self.spec.server.stop_timeout)
            with self.lock:
                rec = self.state["servers"][ss.id]
                if rec.get("status") == "serving":
                    rec["status"] = "stopped"
                rec.update(exit_code=code, stopped_at=_now(), pid=None)
            self.save()

    def _start(self, sid: str, server: srv.Server, env: dict) -> dict:
        if srv._http_ok(server.url + self.spec.server.health_path):
            raise srv.ServerFailed(f"port {server.port} already answers {self.spec.server.health_path}: "
                                   "another server is there (change server.port)", "")
        server.start(env)
        self.update("servers", sid, pid=server.proc.pid)
        healthy = server.wait_healthy(self.spec.server.health_path, float(self.spec.server.start_timeout),
                                     self.stop.is_set)
        facts: dict = {"start_to_healthy_s": round(healthy, 3), "server_version": srv.server_version(server.url)}
        facts["served_model"] = self.spec.server.served_name or srv.served_model(server.url)
        if self.spec.server.probe:
            try:
                ft = srv.first_token_s(server.host, server.port, facts["served_model"])
                facts.update(healthy_to_first_token_s=round(ft, 3), cold_start_s=round(healthy + ft, 3))
            except (OSError, http.client.HTTPException) as e:  # measured without it; said in the state
                facts["probe_error"] = f"{type(e).__name__}: {e}"
        return facts

    # ------------------------------------------------------------ one sweep cell
    def run_cell(self, cid: str, cfg: dict, server: srv.Server, served: str, gpus: list[int]) -> None:
        cdir = self.dir / "cells" / cid
        cdir.mkdir(parents=True, exist_ok=True)
        cfg = dict(cfg)
        if gpus and "gpus" not in cfg:
            cfg["gpus"] = ",".join(map(str, gpus))  # NVML telemetry of this cell's GPUs only
        (cdir / "sweep.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        cmd = [sys.executable, "-m", "profiler", "sweep", "--config", str(cdir / "sweep.yaml"),
               "--url", server.url, "--out", str(cdir), "--json"]
        if "model" not in cfg and served:
            cmd += ["--model", served]
        self.update("cells", cid, status="running", command=cmd, started_at=_now())
        rc, out = self._sweep(cmd, cdir)
        run_dir = _run_dir(out)
        status = "ok" if rc == 0 and run_dir else ("interrupted" if self.stop.is_set() else "failed")
        err = None if status == "ok" else f"sweep exited with {rc}"
        if run_dir:
            self._stamp(Path(run_dir), cid)
        self.update("cells", cid, status=status, exit_code=rc, run_dir=run_dir, error=err, ended_at=_now(),
                    log_tail=None if status == "ok" else srv.log_tail(cdir / "sweep.log"))

    def _stamp(self, run_dir: Path, cid: str) -> None:
        """The run folder says which server ran it (as scripts/vllm_sweep.sh did): manifest["server"]."""
        with self.lock:
            cell = self.state["cells"][cid]
            rec = dict(self.state["servers"].get(cell["server"]) or {})
            host = self.state.get("host") or {}
        keep = ("settings", "command", "env", "port", "gpus", "server_version", "served_model",
                "start_to_healthy_s", "healthy_to_first_token_s", "cold_start_s")
        server = {"kind": "inferprof matrix", "matrix": str(self.dir), "cell": cid,
                  "args": flag_args(rec.get("settings") or {}),  # what compare.html shows per run
                  **{k: rec.get(k) for k in keep}, **{k: host.get(k) for k in ("nvidia_smi", "nvidia_smi_gpus", "cloud")}}
        path = run_dir / "manifest.json"
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        old = manifest.get("server")
        manifest["server"] = {**old, **server} if isinstance(old, dict) else server
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(tmp, path)

    def _sweep(self, cmd: list[str], cdir: Path) -> tuple[int, str]:
        env = dict(os.environ)
        root = str(Path(profiler.__file__).resolve().parents[1])  # the same inferprof as this process
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(cdir / "sweep.out", "wb") as out, open(cdir / "sweep.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=out, stderr=log, stdin=subprocess.DEVNULL, env=env)
            deadline = time.monotonic() + float(self.spec.sweep_timeout)
            while proc.poll() is None:
                if self.stop.is_set() or time.monotonic() > deadline:
                    proc.terminate()  # the sweep records the point under way and exits
                    try:
                        proc.wait(timeout=120)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                    break
                time.sleep(0.2)
            rc = proc.wait()
        return rc, (cdir / "sweep.out").read_text(errors="replace")


def _run_dir(stdout: str) -> str | None:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line).get("run_dir")
            except ValueError:
                continue
    return None


# ---------------------------------------------------------------- the whole matrix

def create(spec: MatrixFile, doc: dict, source: str, host: dict) -> Matrix:
    folder = Path(spec.out) / f"matrix-{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=False)
    state = {"spec": doc, "source": source, "created_at": _now(), "host": host, "servers": {}, "cells": {}}
    m = Matrix(folder, spec, state)
    m.save()
    return m


def reopen(folder: Path, parse) -> Matrix:
    path = folder / STATE
    if not path.is_file():
        raise UserError(f"--resume {folder}: not a matrix folder (no {STATE})")
    state = json.loads(path.read_text())
    m = Matrix(folder, parse(state["spec"], str(path)), state)
    for rec in state.get("servers", {}).values():  # a matrix killed hard may have left its server up
        _stop_orphan(rec)
    return m


def _stop_orphan(rec: dict) -> None:
    pid, argv = rec.get("pid"), rec.get("command")
    if not pid or not argv:
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return
    if [c.decode(errors="replace") for c in cmdline] == argv:  # ours, not a reused pid
        srv.stop_group(int(pid), 30.0, lambda: not Path(f"/proc/{pid}").exists())
    rec["pid"] = None


def run(m: Matrix, detected_gpus: list[int]) -> None:
    """Every server setting, `parallel` at a time; returns when all ran or a stop was asked."""
    settings = server_settings(m.spec)
    per = m.spec.server.gpus_per_cell
    pool = list(m.spec.gpus if m.spec.gpus is not None else detected_gpus)
    if per > len(pool):
        raise UserError(f"server.gpus_per_cell is {per} but {len(pool)} GPU(s) are available")
    work: queue.Queue = queue.Queue()
    for ss in settings:
        work.put(ss)
    free = threading.Condition()

    def worker(slot: int) -> None:
        while not m.stop.is_set():
            try:
                ss = work.get_nowait()
            except queue.Empty:
                return
            with free:
                free.wait_for(lambda: len(pool) >= per)
                mine = [pool.pop(0) for _ in range(per)]
            try:
                m.run_server(ss, slot, mine)
            except Exception as e:  # a bug in one cell must not end the others: record it
                for cid, _ in ss.sweeps:
                    if not m.cell_done(cid):
                        m.update("cells", cid, server=ss.id, status="failed", error=f"internal error: {e!r}")
            finally:
                with free:
                    pool.extend(mine)
                    free.notify_all()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(m.spec.parallel)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)  # short joins: the main thread keeps handling signals
