"""A local multi-node Ray cluster on loopback, for the tests and benchmarks/ray/ (and to try
`inferprof sweep --ray` on one machine).

Each node is a separate `ray start` process started after the previous one (in parallel they
race for ports), with 1 logical CPU (auto-detection would give every node all the cores), its own
custom resource `node<i>`, no dashboard, a capped object store and every port fixed inside
[base, base + 20 * nodes): nothing of ours lands on 6379. Each `ray start` runs in its own
session, so `stop()` ends exactly the processes it started (their process groups), never
another user's Ray.

    python3 scripts/ray_local.py start --base 6400 --nodes 2   # prints the address; Ctrl-C or SIGTERM stops it
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

START_TIMEOUT_S = 90.0
OBJECT_STORE_BYTES = 80 * 1024 * 1024


class LocalCluster:
    def __init__(self, base_port: int = 6460, nodes: int = 2, cpus: int = 1):
        if not (6400 <= base_port and base_port + 20 * nodes <= 6500):
            raise ValueError("keep the cluster's ports within 6400-6499")
        self.base, self.nodes, self.cpus = base_port, nodes, cpus
        self.tmp = tempfile.mkdtemp(prefix="ipray", dir="/tmp")  # short: Ray's socket paths are bounded
        self.groups: list[int] = []
        self.address = f"127.0.0.1:{base_port}"

    def _args(self, i: int) -> list[str]:
        p = self.base + 20 * i
        args = ["--num-cpus", str(self.cpus), "--resources", f'{{"node{i}": 1}}', "--node-ip-address", "127.0.0.1",
                "--object-store-memory", str(OBJECT_STORE_BYTES), "--node-manager-port", str(p + 2),
                "--object-manager-port", str(p + 3), "--dashboard-agent-listen-port", str(p + 4),
                "--dashboard-agent-grpc-port", str(p + 5), "--metrics-export-port", str(p + 6),
                "--runtime-env-agent-port", str(p + 7), "--min-worker-port", str(p + 8),
                "--max-worker-port", str(p + 19), "--disable-usage-stats"]
        if i == 0:
            return ["--head", "--port", str(self.base), "--ray-client-server-port", str(self.base + 1),
                    "--include-dashboard=false", "--temp-dir", self.tmp, *args]
        return ["--address", self.address, *args]

    def start(self) -> LocalCluster:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        try:
            for i in range(self.nodes):
                proc = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", *self._args(i)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
                self.groups.append(proc.pid)
                out, _ = proc.communicate(timeout=START_TIMEOUT_S)
                if proc.returncode != 0:
                    raise RuntimeError(f"ray start (node {i}) failed: {out.decode(errors='replace')[-800:]}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """End the processes of every `ray start` this cluster ran (SIGTERM, then SIGKILL)."""
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            alive = []
            for g in self.groups:
                try:
                    os.killpg(g, sig)
                    alive.append(g)
                except ProcessLookupError:
                    pass
            limit = time.monotonic() + wait
            while alive and time.monotonic() < limit:
                alive = [g for g in alive if _group_alive(g)]
                time.sleep(0.2)
            if not alive:
                break
        self.groups.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    """A process of the group still runs (zombies left to an init that does not reap them don't count)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["start"])
    p.add_argument("--base", type=int, default=6400)
    p.add_argument("--nodes", type=int, default=2)
    a = p.parse_args()
    def end(signum, frame):
        raise KeyboardInterrupt

    for s in (signal.SIGINT, signal.SIGTERM):  # a background job ignores SIGINT unless told otherwise
        signal.signal(s, end)
    cluster = LocalCluster(a.base, a.nodes).start()
    print(cluster.address, flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
