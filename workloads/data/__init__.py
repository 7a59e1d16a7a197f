"""Small data shipped with workloads (``words.json``: the approximate-prompt word list)."""
