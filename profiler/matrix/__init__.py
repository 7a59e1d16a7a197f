"""`inferprof matrix`: a grid of server settings x sweep settings, one server start per server setting.

spec.py (the matrix file and its cells), server.py (start, health, cold start, stop by process group),
hostinfo.py (nvidia-smi and cloud instance metadata), runner.py (cells in order or side by side,
state in matrix.json, --resume), compare.py (the cross-cell table and the best cell per SLO),
cli.py (the subcommand).
"""
