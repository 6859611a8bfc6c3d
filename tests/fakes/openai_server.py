"""A scripted OpenAI-compatible server on 127.0.0.1: real sockets, real HTTP, no GPU.

Tests drive the real `openai` client against it. Each chat request consumes the next
step of a script (a reply, an HTTP error, a delay, a dropped connection) or is answered
by a function of the request body; every request body is kept in `requests`.

Python's `http.server` answers keep-alive requests ~45 ms late when headers and body go
out as separate writes (Nagle meets delayed ACK), so sockets get TCP_NODELAY and every
response leaves in a single write.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from agent.config import ModelSettings
from tests.fakes.http import FastHandler


@dataclass
class Reply:
    """An assistant message; `usage` keys replace the estimated ones."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    reasoning_content: str | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None  # default: "tool_calls" when there are calls, else "stop"


@dataclass
class HttpError:
    """A non-200 answer in the `{"error": {...}}` shape vLLM uses (or `body` verbatim)."""

    status: int
    message: str = "scripted failure"
    retry_after: float | None = None
    body: Any = None


@dataclass
class Delay:
    """Wait, then answer with `then`: slower than the client's timeout, it becomes a timeout."""

    seconds: float
    then: Step = field(default_factory=lambda: Reply("(late reply)"))


@dataclass
class Drop:
    """Close the connection without answering."""


@dataclass(frozen=True)
class Hang:
    """Accept the request and never answer (until the server stops): a wedged server or proxy."""


@dataclass(frozen=True)
class NotJson:
    """A 200 whose body is not a JSON object: a proxy's login page, a URL served by something else."""

    body: str = "<html><body>Please log in to the proxy</body></html>"
    content_type: str = "text/html"


@dataclass
class Trickle:
    """A 200 whose body comes one space every `every` seconds for `seconds`, then `then`'s JSON.

    The Content-Length is sent first and covers the whole body, so only a client's wall-clock
    deadline over the request ends it early: httpx's read timeout restarts with every space.
    A client that gives up shows as one more entry in the server's `cut_connections`.
    """

    every: float = 0.2
    seconds: float = 8.0
    then: Reply = field(default_factory=lambda: Reply("(late reply)"))


Step = Reply | HttpError | Delay | Drop | NotJson | Hang | Trickle
Script = Sequence[Step] | Callable[[dict[str, Any]], Step]

_ERROR_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError", 429: "RateLimitError"}
_call_ids = itertools.count()


def tool_call(name: str, arguments: dict[str, Any] | str, call_id: str | None = None) -> dict[str, Any]:
    """A native tool call; pass `arguments` as a string to send it unencoded (e.g. broken JSON)."""
    encoded = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "id": call_id or f"call_{next(_call_ids)}",
        "type": "function",
        "function": {"name": name, "arguments": encoded},
    }


def rate_limited(retry_after: float = 0.01) -> HttpError:
    return HttpError(429, "rate limit reached, slow down", retry_after=retry_after)


def server_error(message: str = "internal server error") -> HttpError:
    return HttpError(500, message)


def context_length_error(
    max_model_len: int = 32768, prompt_tokens: int = 40000, completion_tokens: int = 1024
) -> HttpError:
    """vLLM's 400 for a prompt that does not fit, in its exact wording."""
    return HttpError(
        400,
        f"This model's maximum context length is {max_model_len} tokens. However, you requested "
        f"{prompt_tokens + completion_tokens} tokens ({prompt_tokens} in the messages, {completion_tokens} in the "
        "completion). Please reduce the length of the messages or completion.",
    )


def invalid_arguments_reply(name: str = "bash") -> Reply:
    """A native call whose arguments are not valid JSON."""
    return Reply(tool_calls=[tool_call(name, '{"command": "ls -la", ')])


def unknown_tool_reply(name: str = "no_such_tool") -> Reply:
    return Reply(tool_calls=[tool_call(name, {})])


def estimate_tokens(text: str) -> int:
    """About four characters a token: enough for tests that reason about growth and reuse."""
    return max(1, len(text) // 4)


class FakeOpenAIServer:
    """Serves `/v1/models` and `/v1/chat/completions` from a background thread."""

    def __init__(
        self,
        script: Script = (),
        *,
        model: str | None = "fake-model",  # None: accept any model name
        max_model_len: int = 32768,
        api_key: str | None = None,  # when set, requests need `Authorization: Bearer <key>`
        flavour: str = "vllm",  # whose `/v1/models` shape and side endpoints to imitate: see `models_listing`
    ) -> None:
        self.script = script
        self.model = model
        self.max_model_len = max_model_len
        self.api_key = api_key
        self.flavour = flavour
        self.requests: list[dict[str, Any]] = []
        self.cut_connections = 0  # Trickle replies the client hung up on before their end
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def script(self) -> Script:
        return self._script

    @script.setter
    def script(self, script: Script) -> None:
        """Replace the script; a sequence is consumed one step per chat request."""
        self._script = script if callable(script) else deque(script)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def model_settings(self, **overrides: Any) -> ModelSettings:
        """Settings pointing at this server, with fast retries so failure tests stay quick."""
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "name": self.model or "fake-model",
            "retries": 2,
            "retry_backoff_base": 0.01,
            "retry_backoff_max": 0.05,
            "request_timeout": 10.0,
            "api_key": self.api_key,
        }
        return ModelSettings(**(values | overrides))

    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # wakes handlers sleeping in a Delay
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def models_listing(self) -> dict[str, Any]:
        """`/v1/models` as each server writes it; `max_model_len` is the context it serves.

        vllm/sglang: `max_model_len` on the entry. llamacpp: `meta.n_ctx` (plus `n_ctx_train`,
        the trained size, which is not what is served). llamacpp-old: no `meta`, only `/props`.
        ollama: nothing; the context is in `/api/show`.
        """
        name = self.model or "fake-model"
        entry: dict[str, Any] = {"id": name, "object": "model", "created": int(time.time()), "owned_by": self.flavour}
        if self.flavour in ("vllm", "sglang"):
            entry |= {"root": name, "parent": None, "max_model_len": self.max_model_len}
        elif self.flavour == "llamacpp":
            entry |= {"owned_by": "llamacpp", "meta": {"vocab_type": 2, "n_vocab": 151936, "n_ctx_train": 32768,
                                                        "n_ctx": self.max_model_len, "n_embd": 896,
                                                        "n_params": 494032768, "size": 397807616}}
        return {"object": "list", "data": [entry]}

    def side_endpoint(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any] | None:
        """llama.cpp's `/props` and `/health`, Ollama's `/api/show`; None where this flavour has none."""
        if self.flavour.startswith("llamacpp") and method == "GET" and path == "/props":
            return {"default_generation_settings": {"n_ctx": self.max_model_len, "params": {"n_predict": -1}},
                    "total_slots": 1, "chat_template": "{{ tools }}", "build_info": "b0-fake"}
        if self.flavour.startswith("llamacpp") and method == "GET" and path == "/health":
            return {"status": "ok"}
        if self.flavour == "ollama" and method == "POST" and path == "/api/show" and (body or {}).get("model"):
            return {"parameters": f"num_ctx                        {self.max_model_len}\nstop \"<|im_end|>\"",
                    "model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768}}
        return None

    def next_step(self, body: dict[str, Any], authorization: str | None) -> Step:
        """Record the request and decide the answer: auth and model checks first, then the script."""
        with self._lock:
            self.requests.append(body)
            number = len(self.requests)
            if self.api_key is not None and authorization != f"Bearer {self.api_key}":
                return HttpError(401, body={"error": "Unauthorized"})
            if self.model is not None and body.get("model") != self.model:
                return HttpError(404, f"The model `{body.get('model')}` does not exist.")
            if callable(self._script):
                try:
                    return self._script(body)
                except Exception as exc:  # surface the test's own bug as a loud 500
                    return HttpError(500, f"fake server script function failed: {exc!r}")
            if not self._script:
                return HttpError(500, f"fake server script exhausted: no step left for chat request #{number}")
            return self._script.popleft()

    def completion(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON a vLLM server would send for `reply`."""
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "tool_calls": reply.tool_calls}
        if reply.reasoning_content is not None:
            message["reasoning_content"] = reply.reasoning_content
        return {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(reply)}],
            "usage": _usage(reply, body),
        }

    def completion_stream(self, reply: Reply, body: dict[str, Any]) -> bytes:
        """The same reply as server-sent events, for clients that set `stream: true`."""
        head = {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model"),
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return head | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

        chunks = [chunk({"role": "assistant", "content": ""})]
        if reply.reasoning_content:
            chunks.append(chunk({"reasoning_content": reply.reasoning_content}))
        if reply.content:
            chunks.append(chunk({"content": reply.content}))
        chunks += [chunk({"tool_calls": [{"index": i, **call}]}) for i, call in enumerate(reply.tool_calls)]
        chunks.append(chunk({}, _finish_reason(reply)))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append(head | {"choices": [], "usage": _usage(reply, body)})
        events = "".join(f"data: {json.dumps(event)}\n\n" for event in chunks) + "data: [DONE]\n\n"
        return events.encode()


def _finish_reason(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _usage(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    prompt = json.dumps(body.get("messages", [])) + (json.dumps(body["tools"]) if body.get("tools") else "")
    written = (reply.content or "") + (reply.reasoning_content or "")
    written += "".join(call["function"]["name"] + call["function"]["arguments"] for call in reply.tool_calls)
    usage = {"prompt_tokens": estimate_tokens(prompt), "completion_tokens": estimate_tokens(written)}
    usage |= reply.usage or {}
    return usage | {"total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}


def _error_body(error: HttpError) -> Any:
    if error.body is not None:
        return error.body
    kind = _ERROR_TYPES.get(error.status, "InternalServerError" if error.status >= 500 else "BadRequestError")
    return {"error": {"message": error.message, "type": kind, "param": None, "code": error.status}}


class _Handler(FastHandler):
    fake: FakeOpenAIServer

    def do_GET(self) -> None:
        side = self.fake.side_endpoint("GET", self.path.rstrip("/"), None)
        if self.path.rstrip("/") == "/v1/models":
            self._send_json(200, self.fake.models_listing())
        elif side is not None:
            self._send_json(200, side)
        else:
            self._send_json(404, _error_body(HttpError(404, f"no route {self.path}")))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            side = self.fake.side_endpoint("POST", self.path.rstrip("/"), json.loads(raw or b"{}"))
        except json.JSONDecodeError:
            side = None
        if side is not None:
            self._send_json(200, side)
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, _error_body(HttpError(404, f"no route {self.path}")))
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            self._send_json(400, _error_body(HttpError(400, f"request body is not JSON: {exc}")))
            return
        self._answer(self.fake.next_step(body, self.headers.get("Authorization")), body)

    def _answer(self, step: Step, body: dict[str, Any]) -> None:
        if isinstance(step, Delay):
            if self.fake.stopping.wait(step.seconds):
                self.close_connection = True
                return
            self._answer(step.then, body)
        elif isinstance(step, Drop):
            self.close_connection = True
        elif isinstance(step, Hang):
            self.fake.stopping.wait()
            self.close_connection = True
        elif isinstance(step, Trickle):
            self._trickle(step, body)
        elif isinstance(step, NotJson):
            self._send(200, step.body.encode(), step.content_type)
        elif isinstance(step, HttpError):
            headers = {} if step.retry_after is None else {"Retry-After": f"{step.retry_after:g}"}
            self._send_json(step.status, _error_body(step), headers)
        elif body.get("stream"):
            self._send(200, self.fake.completion_stream(step, body), "text/event-stream")
        else:
            self._send_json(200, self.fake.completion(step, body))

    def _trickle(self, step: Trickle, body: dict[str, Any]) -> None:
        payload = json.dumps(self.fake.completion(step.then, body)).encode()
        spaces = max(1, round(step.seconds / step.every))
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(spaces + len(payload)))
        self.end_headers()
        try:
            self.wfile.flush()
            for _ in range(spaces):
                if self.fake.stopping.wait(step.every):
                    return
                self.wfile.write(b" ")
                self.wfile.flush()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:  # the client closed the connection
            with self.fake._lock:
                self.fake.cut_connections += 1

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_once(status, payload, {"Content-Type": content_type, **(headers or {})})