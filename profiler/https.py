"""Command-line side of https:// endpoints and hosted APIs: the TLS flags, the settings they make
(backends/tls.py) and the codec of each `--backend`."""

from __future__ import annotations

from backends import tls

HOSTED_BACKENDS = ("anthropic", "responses")  # besides openai (chat/completions) and triton


def add_tls_args(p) -> None:
    g = p.add_argument_group("https")
    g.add_argument("--ca-cert", default="", help="trust this CA bundle (PEM) besides the system store")
    g.add_argument("--insecure", action="store_true",
                   help="do not verify the server's certificate (recorded in the manifest)")
    g.add_argument("--client-cert", default="", help="client certificate (PEM) for mTLS")
    g.add_argument("--client-key", default="", help="its private key (default: inside --client-cert)")


def tls_from_args(a, url: str) -> tls.TLSSettings | None:
    """The TLS settings of an https:// `url` (also used by this process's control calls); None
    for plain http. Raises BackendError (one line) for a missing file or a bad certificate."""
    if not url.startswith("https://"):
        return None
    s = tls.from_options(url, a.ca_cert, a.insecure, a.client_cert, a.client_key)
    tls.use(s)
    return s


def make_hosted_codec(endpoint, target):
    """The codec of a hosted-API backend (`--backend anthropic|responses`)."""
    if target.backend == "anthropic":
        from backends.anthropic import AnthropicCodec

        return AnthropicCodec(endpoint, target.model, api_key_env=target.api_key_env)
    from backends.responses import ResponsesCodec

    return ResponsesCodec(endpoint, target.model, api_key_env=target.api_key_env)


def auth_headers(backend: str, api_key_env: str) -> dict[str, str]:
    """Headers of control calls (model list) for `backend`, the key read from `api_key_env`."""
    if backend == "anthropic":
        from backends.anthropic import auth_headers as anthropic_headers

        return anthropic_headers(api_key_env)
    from backends.responses import auth_headers as bearer

    return bearer(api_key_env)


def add_hosted_args(p) -> None:
    p.add_argument("--hosted-price", default="", metavar="MODEL",
                   help="price the run at this hosted model's list prices, per token used (default for "
                        "--backend anthropic/responses: the served model, when the price sheet knows it)")


def hosted_pricing_for(a, target, console) -> dict | None:
    """manifest["pricing"] of a hosted run, or None (then the GPU pricing applies). An unknown
    --hosted-price is one line and exit 2; an unknown served model is a notice."""
    from profiler.cost.hosted_run import hosted_pricing
    from profiler.errors import UserError

    if a.hosted_price:
        try:
            return hosted_pricing(a.hosted_price)
        except ValueError as e:
            raise UserError(f"--hosted-price: {e}") from None
    if target.backend not in HOSTED_BACKENDS:
        return None
    try:
        return hosted_pricing(target.model)
    except ValueError:
        console.print(f"[yellow]note:[/] no hosted price known for {target.model}; cost columns left empty "
                      "(use --hosted-price MODEL)")
        return None
