"""Choosing between runs: Pareto fronts, a weighted decision matrix, paired significance tests and
an always-valid sequential test for A/B runs (README "Choosing between models and deployments")."""
