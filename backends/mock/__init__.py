"""CPU mock of a GPU inference server (vLLM OpenAI API, Triton generate extension, /metrics).

``server.main`` runs it; ``perfmodel`` holds the pure performance and power model and presets;
``engine`` the continuous-batching state machine. See README.md in this folder.

Imports run one way: ``perfmodel`` <- ``engine``, ``telemetry`` <- ``scheduler`` <- ``server``;
``tokens`` <- ``payloads``, ``http`` and ``chunklog`` are leaves.
"""
