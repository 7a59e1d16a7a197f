"""The `--ray` flags of `sweep` (and of sweep files, hence `matrix` cells): where the load comes from."""

from __future__ import annotations

from dataclasses import replace

from profiler.errors import UserError


def add_args(p) -> None:
    g = p.add_argument_group("load from a Ray cluster (pip install 'inferprof[ray]')")
    g.add_argument("--ray", default="", metavar="ADDRESS",
                   help="run the load-generator workers as Ray actors spread over the cluster's nodes: "
                        "auto | ray://HOST:PORT | HOST:PORT (--workers: actors, default one per node)")
    g.add_argument("--ray-nodes", default="", metavar="LABEL,...",
                   help="custom resources the actors ask for in turn (nodes started with "
                        "ray start --resources='{\"LABEL\": 1}')")
    g.add_argument("--on-node-loss", default="continue", choices=["continue", "stop"],
                   help="a node or actor lost mid-point: mark the point and go on with the rest, or stop the sweep")


def apply_args(a, spec):
    """The spec with the Ray fields set (flags checked first)."""
    if not a.ray:
        if a.ray_nodes:
            raise UserError("--ray-nodes needs --ray")
        return spec
    return replace(spec, ray=a.ray, ray_nodes=a.ray_nodes, on_node_loss=a.on_node_loss)


def check(a) -> None:
    """Before anything starts: Ray is installed and the cluster answers (bounded), in one line each."""
    if getattr(a, "ray", ""):
        from profiler.raypool import connect

        connect(a.ray)
