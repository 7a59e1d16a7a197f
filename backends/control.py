"""Control-plane calls to a server (model list, tokenize, health, metrics): plain urllib, off the hot path."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request

from backends import tls
from backends.errors import BackendError
from backends.keepalive import KeepAlive


class ControlError(BackendError):
    """A control call failed; the message is one line for the user."""


def _open(req: urllib.request.Request, timeout: float) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=tls.context_for(req.full_url)) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read() or b"", e.headers.get("Content-Type", "") if e.headers else ""
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, ssl.SSLError):
            reason = tls.describe_failure(reason)
        raise ControlError(f"cannot reach {req.full_url}: {reason}") from None


def get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    return _open(urllib.request.Request(url, headers=headers or {}), timeout)


def post_json(url: str, body: dict, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    h = {"Content-Type": "application/json", **(headers or {})}
    return _open(urllib.request.Request(url, data=json.dumps(body).encode(), headers=h, method="POST"), timeout)


def list_models(base_url: str, headers: dict[str, str] | None = None) -> list[str]:
    """Model ids from GET /v1/models; ControlError when the endpoint is not OpenAI-compatible."""
    status, body, _ = get(base_url.rstrip("/") + "/v1/models", headers=headers)
    if status != 200:
        raise ControlError(f"{base_url} is not an OpenAI-compatible endpoint (GET /v1/models answered HTTP {status})")
    try:
        data = json.loads(body)
        return [str(m["id"]) for m in data["data"]]
    except (ValueError, KeyError, TypeError):
        raise ControlError(f"{base_url} is not an OpenAI-compatible endpoint (GET /v1/models is not a model list)") from None


def tokenize_counter(base_url: str, model: str, api: str = "completions", timeout: float = 5.0):
    """A count_fn over vLLM's POST /tokenize, or None when the server has no such endpoint.

    It counts as the server will bill the request: for chat, the user message with the chat
    template applied (so it equals usage.prompt_tokens); for completions, the prompt with the
    special tokens the server adds.
    """
    session = KeepAlive(base_url, timeout)  # hundreds of calls: one connection (one TLS handshake)

    def count(text: str) -> int:
        if api == "chat":
            body = {"model": model, "messages": [{"role": "user", "content": text}], "add_generation_prompt": True}
        else:
            body = {"model": model, "prompt": text}
        try:
            status, body = session.post_json("/tokenize", body)
        except (OSError, http.client.HTTPException) as e:
            raise ControlError(f"cannot reach {base_url.rstrip('/')}/tokenize: {e}") from None
        if status != 200:
            raise ControlError(f"POST /tokenize answered HTTP {status}")
        return int(json.loads(body)["count"])

    try:
        count("hello world")
    except (ControlError, ValueError, KeyError):
        return None
    return count


def scrape(url: str, timeout: float = 2.0) -> str | None:
    """Prometheus text from `url`, or None when unavailable."""
    try:
        status, body, _ = get(url, timeout)
    except ControlError:
        return None
    return body.decode("utf-8", "replace") if status == 200 else None
