"""points.csv from a run folder's raw files: the one path used by the sweep and by `inferprof report`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from profiler import runfolder as rf
from profiler.cost.hosted_run import HOSTED, add_hosted_cost_columns, cached_prompt_columns
from profiler.repeats import add_repeat_columns
from profiler.runread import point_rows, read_telemetry, warmup_of
from profiler.summary import POINT_COLUMNS, summarize_point


def summarize_run(run_dir: str | Path) -> pd.DataFrame:
    """One row per point, recomputed from requests.parquet, chunks.parquet, telemetry.parquet,
    points.jsonl and manifest.json. Deterministic: the same folder gives the same table."""
    run_dir = Path(run_dir)
    manifest = rf.read_json(run_dir / rf.MANIFEST)
    facts = rf.read_point_facts(run_dir)
    tel = read_telemetry(run_dir)
    slos = manifest.get("slos") or {}
    warmup = warmup_of(manifest)
    rows, quality = [], manifest.get("quality")
    quality_rows = []
    for f, r, c in point_rows(run_dir, facts):
        row = summarize_point(f, r, c, slos, warmup)
        row.update(_telemetry_columns(tel, f, row, manifest.get("gpus")))
        row.update(cached_prompt_columns(r))  # only when the API reported cached prompt tokens
        rows.append(row)
        if quality:  # only runs measured with an eval set (profiler/quality/)
            quality_rows.append(_quality_columns(run_dir, f, r, warmup, quality))
    points = pd.DataFrame(rows)
    if rows:
        extra = [c for c in points.columns if c not in POINT_COLUMNS]
        points = points[[c for c in POINT_COLUMNS if c in points.columns] + extra]
    points = add_repeat_columns(_with_cost(points, manifest), manifest)
    if quality_rows:  # after every other column
        from profiler.quality.summary import add_quality_cost

        points = add_quality_cost(pd.concat([points, pd.DataFrame(quality_rows, index=points.index)], axis=1))
    return points


def _quality_columns(run_dir: Path, facts: dict, req: pd.DataFrame, warmup: float, quality: dict) -> dict:
    from profiler.quality.scoring import SCORES, read_point_files
    from profiler.quality.summary import quality_columns

    return quality_columns(facts, req, warmup, read_point_files(run_dir, SCORES, int(facts["point"])), quality)


def _telemetry_columns(tel: pd.DataFrame, facts: dict, row: dict, gpus: list | None) -> dict:
    try:
        from profiler.telemetry import TELEMETRY_COLUMNS
        from profiler.telemetry import summarize_point as summarize_telemetry
    except ImportError:
        return {}
    if not len(tel):
        return {c: float("nan") for c in TELEMETRY_COLUMNS}
    end = facts.get("end_ns") or facts.get("stop_ns") or 0
    return summarize_telemetry(tel, int(facts["start_ns"]), int(end), float(row.get("output_tokens_total") or 0),
                               gpu_info=gpus)


def _with_cost(points: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    pricing = manifest.get("pricing")
    if not pricing or not len(points):
        return points
    if pricing.get("kind") == HOSTED:  # a hosted API: its list prices of the tokens used
        return add_hosted_cost_columns(points, pricing)
    try:
        from profiler.cost import add_cost_columns
        from profiler.cost.pricing import Pricing
    except ImportError:
        return points
    return add_cost_columns(points, Pricing.from_dict(pricing), gpus=None)
