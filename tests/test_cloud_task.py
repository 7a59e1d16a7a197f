"""scripts/cloud/matrix.sky.yaml against SkyPilot's own validator (schema, then Task.from_yaml),
run in the SkyPilot venv of scripts/cloud/skypilot_venv.sh (marker `cloud`: a cold venv takes
minutes); the matrix file it runs is checked by inferprof's own parser in the fast suite."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from profiler.matrix.cli import check_sweeps, load_file

REPO = Path(__file__).resolve().parents[1]
TASK = REPO / "scripts" / "cloud" / "matrix.sky.yaml"

VALIDATE = r"""
import json, sys, yaml
from sky.utils import common_utils, schemas
out = {}
for path in sys.argv[1:]:
    cfg = yaml.safe_load(open(path))
    try:
        common_utils.validate_schema(cfg, schemas.get_task_schema(), "Invalid task YAML: ")
        common_utils.validate_schema(cfg.get("resources") or {}, schemas.get_resources_schema(), "Invalid resources: ")
        import sky
        task = sky.Task.from_yaml(path)
        out[path] = {"ok": True, "accelerators": [str(r.accelerators) for r in task.resources],
                     "envs": dict(task.envs)}
    except ValueError as e:
        out[path] = {"ok": False, "error": str(e)}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def sky_python() -> str:
    script = REPO / "scripts" / "cloud" / "skypilot_venv.sh"
    p = subprocess.run(["bash", str(script), "setup"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, f"skypilot venv setup failed:\n{p.stderr[-3000:]}"
    return subprocess.run(["bash", str(script), "python"], capture_output=True, text=True).stdout.strip()


@pytest.mark.cloud
@pytest.mark.slow
def test_task_file_validates_against_skypilots_schema(sky_python, tmp_path):
    typo = yaml.safe_load(TASK.read_text())
    typo["resources"]["acelerators"] = typo["resources"].pop("accelerators")
    bad = tmp_path / "typo.sky.yaml"
    bad.write_text(yaml.safe_dump(typo))
    p = subprocess.run([sky_python, "-c", VALIDATE, str(TASK), str(bad)], capture_output=True, text=True,
                       timeout=300, cwd=REPO, env={**os.environ, "SKYPILOT_DISABLE_USAGE_COLLECTION": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got[str(TASK)]["ok"], got[str(TASK)]
    assert got[str(TASK)]["accelerators"] == ["{'L4': 1}"]
    assert got[str(TASK)]["envs"]["MATRIX"] == "scripts/cloud/matrix-gpu.yaml"
    assert not got[str(bad)]["ok"] and "acelerators" in got[str(bad)]["error"]  # the validator can fail


def test_the_tasks_matrix_file_is_valid(monkeypatch):
    env = yaml.safe_load(TASK.read_text())["envs"]
    monkeypatch.setenv("MODEL", env["MODEL"])
    spec, _ = load_file(str(REPO / env["MATRIX"]))
    check_sweeps(spec)  # every cell's sweep keys are sweep flags
    from profiler.matrix.spec import server_command, server_settings

    ss = server_settings(spec)
    assert len(ss) == 4 and spec.server.gpus_per_cell == 1
    cmd = server_command(spec, ss[0].settings, spec.server.port)
    assert cmd[:3] == ["vllm", "serve", env["MODEL"]] and "--max-num-seqs" in cmd
