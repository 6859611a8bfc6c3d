"""The context window a running server actually serves, read the way each server reports it.

A server is often started with less context than the model was trained for (`-c 8192`,
`--max-model-len 32768`), and a loop that believes the profile's 262,144 tokens overflows
it. Where each server says it (checked against their sources and a running llama-server):

- vLLM and SGLang: `/v1/models` -> `data[].max_model_len`.
- llama.cpp's `llama-server`: `/v1/models` -> `data[].meta.n_ctx` (recent builds), and
  `/props` -> `default_generation_settings.n_ctx` (older builds list no `meta`). With
  several slots (`-np N`) a request gets `n_ctx / N`; `/props` reports per-slot `n_ctx`.
- Ollama: `POST /api/show {"model": NAME}` -> `parameters` line `num_ctx N` when the model
  file sets one; otherwise Ollama serves its default (`OLLAMA_DEFAULT_NUM_CTX`), whatever
  the trained `model_info["<arch>.context_length"]` says.
- Others (LM Studio, proxies): `context_length` or `context_window` on the model entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_LISTING_KEYS = ("max_model_len", "context_length", "context_window")
OLLAMA_DEFAULT_NUM_CTX = 4096  # Ollama's num_ctx when nothing sets it (0.6 and later)

# GET or POST one server path (relative to the server's root, e.g. "/props"); None when absent.
Fetch = Callable[[str, dict[str, Any] | None], Any]


def from_listing(models: list[dict[str, Any]], name: str) -> int | None:
    """Tokens per request from `/v1/models` entries for `name` (vLLM, SGLang, llama.cpp)."""
    for entry in models:
        if entry.get("id") != name:
            continue
        for key in _LISTING_KEYS:
            if _positive(entry.get(key)):
                return entry[key]
        meta = entry.get("meta")
        if isinstance(meta, dict) and _positive(meta.get("n_ctx")):
            return meta["n_ctx"]
    return None


def from_llama_props(props: Any) -> int | None:
    """llama.cpp's `/props`: the per-slot context under `default_generation_settings.n_ctx`."""
    if not isinstance(props, dict):
        return None
    settings = props.get("default_generation_settings")
    if isinstance(settings, dict) and _positive(settings.get("n_ctx")):
        return settings["n_ctx"]
    return props["n_ctx"] if _positive(props.get("n_ctx")) else None


def from_ollama_show(show: Any) -> int | None:
    """Ollama's `/api/show`: `num_ctx` when the model sets it, else the default, never above training."""
    if not isinstance(show, dict) or not isinstance(show.get("model_info"), dict):
        return None
    trained = next((v for k, v in show["model_info"].items() if k.endswith(".context_length") and _positive(v)), None)
    found = re.search(r"^\s*num_ctx\s+(\d+)\s*$", str(show.get("parameters") or ""), re.MULTILINE)
    served = int(found.group(1)) if found else OLLAMA_DEFAULT_NUM_CTX
    return min(served, trained) if trained else served


def served_context_window(models: list[dict[str, Any]], name: str, fetch: Fetch | None = None) -> int | None:
    """The context the server gives `name`: the listing first, then llama.cpp's and Ollama's own endpoints."""
    found = from_listing(models, name)
    if found is not None or fetch is None:
        return found
    return from_llama_props(fetch("/props", None)) or from_ollama_show(fetch("/api/show", {"model": name}))


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
