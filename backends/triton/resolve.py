"""Before a sweep: is the Triton server ready, does it serve the model, can we stream from it?

Checks run over the transport the sweep will use (HTTP: plain urllib via backends.control;
gRPC: tritonclient). Failures raise BackendError, one line for the user (the CLI prints it and exits 2).

Findings on tritonserver 2.51 (see docs/triton.md): `GET /v2` does NOT list "generate" among its
extensions although generate_stream works, so a missing entry is confirmed with a probe that
cannot start a generation (a malformed JSON body: an error from Triton, 404 where no such route);
PyTriton leaves `POST /v2/repository/index` empty (and token-protected by default), so the model
list falls back to `GET /v2/models/stats`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from backends import control
from backends.errors import BackendError
from backends.triton.grpc_codec import grpc_target
from backends.triton.http_codec import VLLM_FLAGS

TIMEOUT_S = 10.0
MIN_TOKENS_INPUTS = ("min_tokens", "min_length")


@dataclass
class ModelInfo:
    """What make_codec needs, kept in the run manifest under "triton"."""

    protocol: str
    url: str
    model: str
    style: str
    inputs: dict[str, str]  # name -> datatype
    outputs: list[str]
    flags: list[str]
    min_tokens_input: str
    decoupled: bool | None
    server_version: str


def pick_style(model: str, inputs: dict[str, str], style: str = "auto") -> str:
    if "text_input" not in inputs:
        raise BackendError(f"model {model!r} has no text_input input (it takes {', '.join(inputs) or 'nothing'}): "
                    "not a Triton LLM model (vLLM backend or TensorRT-LLM ensemble/BLS)")
    if style in ("vllm", "trtllm"):
        return style
    if style != "auto":
        raise BackendError(f"unknown Triton request style {style!r}: choose auto, vllm or trtllm")
    if "sampling_parameters" in inputs:
        return "vllm"
    if "max_tokens" in inputs:
        return "trtllm"
    raise BackendError(f"model {model!r} takes neither sampling_parameters (vLLM backend) nor max_tokens "
                f"(TensorRT-LLM): inputs are {', '.join(inputs)}")


def _flags(style: str, inputs: dict[str, str]) -> list[str]:
    # The vLLM backend needs these to report counts; other models only get the ones they declare.
    return list(VLLM_FLAGS) if style == "vllm" else [f for f in VLLM_FLAGS if f in inputs]


def _info(protocol, url, model, style, inputs, outputs, decoupled, version) -> ModelInfo:
    style = pick_style(model, inputs, style)
    mt = next((n for n in MIN_TOKENS_INPUTS if n in inputs), "") if style == "trtllm" else ""
    return ModelInfo(protocol, url, model, style, inputs, outputs, _flags(style, inputs), mt, decoupled, version)


def _json(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return None


def _served_list(models: list[str]) -> str:
    return f"it serves: {', '.join(models)}" if models else "it does not list its models"


def _need_model(where: str, models: list[str]) -> BackendError:
    if models:
        return BackendError(f"--model is required: the server at {where} serves {', '.join(models)}")
    return BackendError(f"--model is required: the server at {where} does not list its models")


# ---------------------------------------------------------------- HTTP


def _http_models(base: str) -> list[str]:
    """Model names from the repository index, else from the statistics endpoint; [] if neither."""
    try:
        status, body, _ = control.post_json(base + "/v2/repository/index", {}, TIMEOUT_S)
        data = _json(body) if status == 200 else None
        if isinstance(data, list):
            names = [str(m["name"]) for m in data if isinstance(m, dict) and "name" in m
                     and m.get("state", "READY") in ("READY", "")]
            if names:
                return sorted(set(names))
        status, body, _ = control.get(base + "/v2/models/stats", TIMEOUT_S)
        data = _json(body) if status == 200 else None
        if isinstance(data, dict):
            return sorted({str(m["name"]) for m in data.get("model_stats", []) if "name" in m})
    except control.ControlError:
        pass
    return []


def resolve_http(url: str, model: str, style: str = "auto") -> ModelInfo:
    base = url.rstrip("/")
    try:
        status, _, _ = control.get(base + "/v2/health/ready", TIMEOUT_S)
    except control.ControlError as e:
        raise BackendError(str(e)) from None
    if status != 200:
        hint = "not a Triton server?" if status in (404, 405) else "still loading?"
        raise BackendError(f"Triton server at {url} is not ready (GET /v2/health/ready answered HTTP {status}; {hint})")
    try:
        status, body, _ = control.get(base + "/v2", TIMEOUT_S)
        meta = _json(body) if status == 200 else None
        if not isinstance(meta, dict):
            raise BackendError(f"{url} is not a Triton server (GET /v2 answered HTTP {status})")
        version = str(meta.get("version", ""))
        has_generate = "generate" in (meta.get("extensions") or [])

        if not model:
            models = _http_models(base)
            if len(models) != 1:
                raise _need_model(url, models)
            model = models[0]
        status, body, _ = control.get(f"{base}/v2/models/{model}", TIMEOUT_S)
        if status in (400, 404):
            raise BackendError(f"model {model!r} is not served at {url}; {_served_list(_http_models(base))}")
        meta = _json(body) if status == 200 else None
        if not isinstance(meta, dict):
            raise BackendError(f"GET /v2/models/{model} at {url} answered HTTP {status}")
        inputs = {str(t["name"]): str(t.get("datatype", "")) for t in meta.get("inputs", []) if "name" in t}
        outputs = [str(t["name"]) for t in meta.get("outputs", []) if "name" in t]

        if not has_generate and not _probe_generate(base, model):
            raise BackendError(f"server at {url} has no generate extension (Triton's generate_stream endpoint); "
                        "use --protocol grpc or the OpenAI frontend")
        decoupled = None
        status, body, _ = control.get(f"{base}/v2/models/{model}/config", TIMEOUT_S)
        cfg = _json(body) if status == 200 else None
        if isinstance(cfg, dict):
            decoupled = bool((cfg.get("model_transaction_policy") or {}).get("decoupled", False))
    except control.ControlError as e:
        raise BackendError(str(e)) from None
    return _info("http", url, model, style, inputs, outputs, decoupled, version)


def _probe_generate(base: str, model: str) -> bool:
    """True when POST .../generate_stream exists. The body is malformed JSON on purpose: Triton
    rejects it before any inference; a server without the route answers 404/405."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{base}/v2/models/{model}/generate_stream", data=b"{",
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read() or b""
    except (urllib.error.URLError, OSError) as e:
        raise control.ControlError(f"cannot reach {req.full_url}: {getattr(e, 'reason', e)}") from None
    # Triton 2.51 answers 500 {"error": "failed to parse the request JSON buffer ..."}, the mock 400.
    return status not in (404, 405, 501) and isinstance(_json(body), dict)


# ---------------------------------------------------------------- gRPC


def resolve_grpc(url: str, model: str, style: str = "auto") -> ModelInfo:
    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError:
        raise BackendError("--protocol grpc needs tritonclient: pip install 'tritonclient[grpc]'") from None
    target = grpc_target(url)
    try:
        client = grpcclient.InferenceServerClient(target)
    except InferenceServerException as e:
        raise BackendError(f"bad gRPC address {target!r}: {e.message()}") from None

    def models() -> list[str]:
        try:
            idx = client.get_model_repository_index(client_timeout=TIMEOUT_S)
            names = {m.name for m in idx.models if m.state in ("READY", "")}
            if names:
                return sorted(names)
            stats = client.get_inference_statistics(client_timeout=TIMEOUT_S)
            return sorted({m.name for m in stats.model_stats})
        except InferenceServerException:
            return []

    try:
        try:
            ready = client.is_server_ready(client_timeout=TIMEOUT_S)
            meta = client.get_server_metadata(client_timeout=TIMEOUT_S)
        except InferenceServerException as e:
            raise BackendError(f"cannot reach a Triton gRPC server at {target}: {_grpc_reason(e)}") from None
        if not ready:
            raise BackendError(f"Triton server at {target} is not ready")
        if not model:
            names = models()
            if len(names) != 1:
                raise _need_model(target, names)
            model = names[0]
        try:
            md = client.get_model_metadata(model, client_timeout=TIMEOUT_S)
        except InferenceServerException:
            raise BackendError(f"model {model!r} is not served at {target}; {_served_list(models())}") from None
        inputs = {t.name: t.datatype for t in md.inputs}
        outputs = [t.name for t in md.outputs]
        decoupled = None
        try:
            cfg = client.get_model_config(model, client_timeout=TIMEOUT_S).config
            decoupled = bool(cfg.model_transaction_policy.decoupled)
        except InferenceServerException:
            pass
    finally:
        client.close()
    return _info("grpc", url, model, style, inputs, outputs, decoupled, meta.version)


def _grpc_reason(e) -> str:
    code = str(e.status() or "").rsplit(".", 1)[-1]
    msg = (e.message() or "").splitlines()[0][:160]
    return f"{code}: {msg}" if code else msg


# ---------------------------------------------------------------- entry point


def resolve(target, protocol: str = "http", style: str = "auto"):
    """Check the server and model for `target` (profiler.sweep.Target); store what the codec needs
    in target.extra_manifest["triton"] (it lands in manifest.json). Returns the target."""
    if protocol not in ("http", "grpc"):
        raise BackendError(f"unknown Triton protocol {protocol!r}: choose http or grpc")
    if protocol == "grpc":
        info = resolve_grpc(target.url, target.model, style)
    else:
        info = resolve_http(target.url, target.model, style)
    target.model = info.model
    target.extra_manifest["triton"] = asdict(info)
    return target
