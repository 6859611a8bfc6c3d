"""The model client: one chat completion per call, with our own retries and error lines.

We talk to vLLM/SGLang through the `openai` SDK but keep retries ourselves (the SDK's
are switched off) so that every failure ends as one `ModelError` line naming the server,
and so that a context overflow is never retried: the same prompt will not fit next time
either. Tool calls are returned raw; parsing them is `agent.toolcalls`' job.
"""

from __future__ import annotations

import email.utils
import os
import random
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar
from urllib.parse import urlparse


@contextmanager
def _without(*names: str) -> Iterator[None]:
    """Within: `import NAME` raises ImportError for each of NAMES not imported yet.

    The `openai` SDK imports aiohttp (its async transport) and its HTTP core imports trio (async
    locks) whenever they are installed (the `datasets` and `ray` extras bring them): our client
    is synchronous and uses neither, and they are a quarter of the SDK's import and client set-up,
    on `agent fix`'s way to its first request (trio runs `ldconfig -p` as it loads). A library
    that needs one later imports it then, as usual.
    """
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


ASYNC_ONLY = ("aiohttp", "trio")
with _without(*ASYNC_ONLY):
    import openai


from agent.config import ModelSettings, warn_on_stderr  # noqa: E402
from agent.errors import EnvironmentProblem, UsageError  # noqa: E402
from agent.profiles import Profile, pick_profile  # noqa: E402
from agent.redaction import Redactor, public_url, url_secrets  # noqa: E402
from agent.request_deadline import cut_at_deadline, deadline_client  # noqa: E402
from agent.served_context import served_context_window  # noqa: E402
from agent.surrogates import SurrogateFree  # noqa: E402

T = TypeVar("T")

# Sampling parameters the OpenAI API names; everything else travels in `extra_body`.
_OPENAI_SAMPLING = ("temperature", "top_p", "max_tokens")
# Every name a server we talk to reads as the reply's length in tokens: OpenAI's and vLLM's/SGLang's
# `max_tokens`, `max_completion_tokens`; llama.cpp's `n_predict` (-1: unbounded); TGI's and SGLang's
# native `max_new_tokens`; Ollama's `num_predict`. vLLM's `min_tokens` is a floor: never above the bound.
REPLY_BOUND_KEYS = ("max_tokens", "max_completion_tokens", "n_predict", "max_new_tokens", "num_predict", "min_tokens")
# vLLM: "This model's maximum context length is N tokens..."; SGLang: "...longer than the
# model's context length..."; llama.cpp: "exceeds the available context size"; OpenAI:
# code `context_length_exceeded`.
_CONTEXT_OVERFLOW = re.compile(
    r"context (length|size|window)|maximum context|too many tokens|context_length_exceeded|exceed_context_size",
    re.IGNORECASE,
)
_TRANSIENT_STATUS = frozenset({408, 429})
WAIT_NOTICE_EVERY = 15.0  # seconds between "still waiting for the model server" events
MIN_REQUEST_SECONDS = 0.05  # less time left than this is no time left


class ModelError(EnvironmentProblem):
    """The model server gave no usable reply; the message is one line naming the server."""


class NoReply(ModelError):
    """Every attempt timed out: the server accepts requests but does not answer them (wedged, overloaded)."""


class ContextLengthExceeded(ModelError):
    """The prompt no longer fits the model's context; the loop must shrink it, not retry."""


class OutOfTime(ModelError):
    """The caller's deadline came while waiting for (or before retrying) the model server.

    A `ModelError` for callers that know no deadlines; the loop turns it into `time_limit`.
    """


# Live news about a request, for whoever shows progress: ("model_wait", {"seconds", "attempt",
# "attempts"}) every WAIT_NOTICE_EVERY seconds of a request in flight, from a helper thread;
# ("model_retry", {"attempt", "attempts", "reason", "wait"}) before a retry, from the caller's.
ModelProgress = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None  # prompt tokens served from the prefix cache, if reported


@dataclass
class ModelReply:
    """One assistant message, unparsed, plus what it cost to get it."""

    content: str | None
    native_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    reasoning: str | None = None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    latency: float = 0.0  # seconds for the attempt that succeeded
    cost: float | None = None


class Model(Protocol):
    @property
    def max_tokens(self) -> int | None:  # the reply budget the loop keeps free in the context window
        ...

    def query(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        deadline: float | None = None,  # time.monotonic() by which to give up with OutOfTime
        progress: ModelProgress | None = None,
    ) -> ModelReply: ...

    def context_window(self, deadline: float | None = None) -> int:  # asking the server gives up by `deadline`
        ...


class OpenAIModel:
    """A model behind an OpenAI-compatible `/v1/chat/completions` endpoint.

    Settings naming several servers (`model.base_urls`) are served by their first: a single
    conversation stays on one server (its prefix cache); `agent.endpoints.EndpointPool` deals
    many conversations out over all of them.
    """

    def __init__(
        self,
        settings: ModelSettings,
        profile: Profile | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        wait_notice: float = WAIT_NOTICE_EVERY,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        """`warn` gets each line saying a configured window or reply bound was capped, once per client
        (default: a `warning:` line on stderr, once per process, as a run's pools and attempts make many clients)."""
        if settings.base_urls:  # one client, one server: `agent fix`'s conversation goes to the first of several
            settings = settings.model_copy(update={"base_url": settings.base_urls[0], "base_urls": []})
        self.settings = settings
        self.wait_notice = wait_notice
        self.profile = profile or pick_profile(settings.name, settings.profile)
        # The profile the user's own settings pick: a repository's `model.name` or `profile` choosing another
        # may lower the profile's reply bound and window, never raise them.
        self._users_profile = self.profile if profile else _users_profile(settings)
        # The loop flips this off when the server rejects `tools` or answers calls as text.
        self.native_tools = settings.tool_format in ("auto", "native")
        self.text_tool_format = (
            settings.tool_format if settings.tool_format in ("hermes", "xml") else self.profile.text_tool_format
        )
        self.thinks = self.profile.thinks_with(settings.extra_body)
        self._sleep = sleep
        self._warn = warn or _warn_once
        self._warned: set[str] = set()
        self._context_window: int | None = None
        # Lone surrogates shown as text, walking only what each conversation added since its last request.
        self._surrogate_free = SurrogateFree()
        api_key = settings.api_key.get_secret_value() if settings.api_key else "EMPTY"
        # Messages name the endpoint without its credentials; the server's own words are masked too.
        self.url = public_url(settings.base_url)
        self._redact = Redactor([*url_secrets(settings.base_url), api_key if api_key != "EMPTY" else None])
        try:
            with _without(*ASYNC_ONLY):  # the HTTP core is imported here
                # Every request ends by its timeout on the wall clock, even against a server that
                # trickles its body (httpx's read timeout restarts with each chunk).
                self._client = openai.OpenAI(
                    base_url=settings.base_url, api_key=api_key, timeout=settings.request_timeout, max_retries=0,
                    http_client=deadline_client(openai.DefaultHttpxClient),
                )
        except (OSError, ssl.SSLError) as exc:  # SSL_CERT_FILE names no usable CA bundle (config checks it first)
            from sandbox.certs import client_bundle_problem

            raise UsageError(client_bundle_problem(os.environ) or f"cannot set up TLS for {self.url}: {exc}") from None

    def query(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        deadline: float | None = None,
        progress: ModelProgress | None = None,
    ) -> ModelReply:
        """One completion; every attempt's timeout and every backoff is capped by `deadline`."""
        # Posted as plain JSON: `chat.completions.create` walks every message of the growing
        # conversation through its TypedDict transform and parses the reply into models we
        # would turn straight back into a dict: about a third of an eval batch's own CPU time.
        request = self._request(messages, tools, self.context_window(deadline))
        body = self._surrogate_free(request | request.pop("extra_body", {}))
        raw, latency = self._with_retries(lambda timeout: self._post_completion(body, timeout), deadline, progress)
        return self._reply(raw, latency)

    def _post_completion(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            raw = self._client.post("/chat/completions", body=body, cast_to=object, options={"timeout": timeout})
        except ValueError as exc:  # a JSON content type whose body does not parse
            raw = f"unparsable JSON ({exc})"
        if not isinstance(raw, dict):  # a proxy's login page, a wrong URL answered by some other server...
            text = " ".join(str(raw).split())
            raise ModelError(f"model server at {self.url} answered with something that is not a "
                             f"JSON object: {self._redact(text[:200])!r}")
        return raw

    def list_models(self, deadline: float | None = None) -> list[dict[str, Any]]:
        """The server's `/v1/models` entries, with server-specific fields such as `max_model_len`.

        `deadline` (`time.monotonic()` seconds) caps the wait as for `query`. Read as plain JSON (its
        `data` list, or a bare list), as chat replies are: the SDK's typed page and models are
        more imports and parsing on the way to the first request. Raises `ModelError` for an
        answer that holds no such list.
        """
        raw, _ = self._with_retries(lambda timeout: self._get_json("/models", timeout), deadline)
        entries = raw.get("data") if isinstance(raw, dict) else raw
        if not isinstance(entries, list):
            text = " ".join(str(raw).split())
            raise ModelError(f"model server at {self.url} answered /models with no list of models: "
                             f"{self._redact(text[:200])!r}")
        return [entry for entry in entries if isinstance(entry, dict)]

    def _get_json(self, path: str, timeout: float) -> Any:
        try:
            return self._client.get(path, cast_to=object, options={"timeout": timeout})
        except ValueError as exc:  # a JSON content type whose body does not parse
            return f"unparsable JSON ({exc})"

    @property
    def max_tokens(self) -> int:
        """The reply bound sent with every request, in tokens; never unbounded.

        `model.max_tokens` if set, else the profile's; at most a quarter of the context
        window (half for an explicit setting), so a rambling reply ends in seconds and the
        loop knows how much room to keep free. Unbounded, one compaction reply on a CPU
        server generated for six minutes, past the run's time limit.
        """
        return self._reply_bound(self.context_window())

    def _reply_bound(self, window: int) -> int:
        """The reply bound for a `window`-token context. A configured `model.max_tokens` (or a bound in the
        user's `extra_body`) beyond half the window is capped to it; one from a repository's config may only
        lower the bound the user's settings give. Each cap is one warning line naming the key and its source."""
        asked = [value for key, value in _entries(self.settings.extra_body)
                 if key in REPLY_BOUND_KEYS[:-1] and _positive_int(value)]
        fits = max(1, window // 2)
        if asked and min(asked) > fits:
            self._note(f"the reply bound {min(asked)} in model.extra_body (your settings: a repository's cannot set one) "
                       f"is capped to {fits}: half of the {window}-token context window")
        usual = min(*asked, fits) if asked else max(1, min(self._profile_limit("max_tokens"), window // 4))
        configured = self.settings.max_tokens
        if configured is None:
            return usual
        repository = self.settings.from_repository("max_tokens")
        ceiling = usual if repository else fits
        if configured <= ceiling:
            return configured
        why = ("the reply bound your own settings give: a repository's config may only lower it" if repository
               else f"half of the {window}-token context window")
        self._note(f"model.max_tokens = {configured} ({self.settings.source_of('max_tokens')}) is capped to "
                   f"{ceiling}: {why}")
        return ceiling

    def context_window(self, deadline: float | None = None) -> int:
        """Tokens per request: what the server serves, else the profile's. A configured `model.context_window`
        may only lower that (above it: one warning line, and the served window is used); where the server says
        nothing, the user's own setting is taken as it is, a repository's only up to the profile's.

        Asking the server gives up by `deadline` (`time.monotonic()` seconds), then answers as if it said nothing.
        """
        if self._context_window is not None:
            return self._context_window
        remember = True
        try:
            served = served_context_window(self.list_models(deadline), self.settings.name,
                                           lambda path, body: self._server_json(path, body, deadline))
        except (NoReply, OutOfTime):  # remembered: asking again would wait as long again, deadline or not
            served = None
        except ModelError:
            served, remember = None, False  # the server may come back
        window = self._window_within(served)
        if remember:
            self._context_window = window
        return window

    def _window_within(self, served: int | None) -> int:
        """The configured window, if any, within what the server serves (`served`, None: unknown)."""
        configured = self.settings.context_window
        repository = self.settings.from_repository("context_window")
        ceiling = served or (self._profile_limit("context_window") if configured is None or repository else None)
        if configured is None or ceiling is None:
            return configured or ceiling  # type: ignore[return-value]
        if configured <= ceiling:
            return configured
        above = (f"the {ceiling} tokens the server at {self.url} serves" if served else
                 f"the profile's {ceiling} tokens: a repository's config may only lower it")
        self._note(f"model.context_window = {configured} ({self.settings.source_of('context_window')}) is above "
                   f"{above}; using {ceiling}")
        return ceiling

    def _profile_limit(self, field: str) -> int:
        """The profile's `max_tokens` or `context_window`, at most that of the profile the user's settings pick
        (one warning line when a repository's choice of profile is what was lowered)."""
        chosen, users = getattr(self.profile, field), getattr(self._users_profile, field)
        if chosen > users:
            self._note(f"model profile {self.profile.name} (chosen by {self._profile_source()}) has {field} {chosen}; "
                       f"using {users}, your settings' profile's: a repository's config may only lower it")
        return min(chosen, users)

    def _profile_source(self) -> str:
        key = "profile" if self.settings.profile != "auto" else "name"
        return f"model.{key} in {self.settings.source_of(key)}"

    def _note(self, message: str) -> None:
        """Warn once per client with `message`."""
        if message not in self._warned:
            self._warned.add(message)
            self._warn(message)

    def _server_json(self, path: str, body: dict[str, Any] | None, deadline: float | None = None) -> Any:
        """One try at a server-specific endpoint beside `/v1` (`/props`, `/api/show`); None when absent.

        Raises `OutOfTime` when `deadline` has come.
        """
        url = re.sub(r"/v1/?$", "", self.settings.base_url.rstrip("/")) + path
        options: Any = {"timeout": self._time_for_attempt(deadline, 1, 1)}
        try:
            if body is None:
                return self._client.get(url, cast_to=object, options=options)
            return self._client.post(url, body=body, cast_to=object, options=options)
        except (openai.APIError, ValueError):
            return None

    def warm(self) -> None:
        """Work the first request would do first, done ahead (in the background while the sandbox
        starts): the SDK's platform headers, which run `uname -p` and `ldconfig -p` once."""
        self._client.platform_headers()

    def close(self) -> None:
        self._client.close()

    def _request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], window: int) -> dict[str, Any]:
        """Profile sampling < `extra_body` < explicit settings; non-OpenAI keys go in `extra_body`."""
        chosen = {name: getattr(self.settings, name) for name in _OPENAI_SAMPLING}
        bound = self._reply_bound(window)
        if not {"max_tokens", "max_completion_tokens"} & self.settings.extra_body.keys():
            chosen["max_tokens"] = bound
        # whatever spelling `extra_body` uses, at whatever depth (Ollama's `options.num_predict`), the reply
        # stays within the bound
        body = self.profile.sampling_with(self.settings.extra_body) | _bounded(self.settings.extra_body, bound)
        if chosen["max_tokens"] is not None:
            chosen["max_tokens"] = min(chosen["max_tokens"], bound)
        body |= {name: value for name, value in chosen.items() if value is not None}
        request: dict[str, Any] = {"model": self.settings.name, "messages": messages}
        request |= {name: body.pop(name) for name in _OPENAI_SAMPLING if name in body}
        if body:
            request["extra_body"] = body
        if tools and self.native_tools:
            request["tools"] = tools
        return request

    def _reply(self, raw: dict[str, Any], latency: float) -> ModelReply:
        choices = raw.get("choices") or []
        if not choices:
            raise ModelError(f"model server at {self.url} answered without any choices")
        choice = choices[0]
        message = choice.get("message") or {}
        reported = raw.get("usage") or {}
        usage = Usage(
            prompt_tokens=int(reported.get("prompt_tokens") or 0),
            completion_tokens=int(reported.get("completion_tokens") or 0),
            cached_tokens=(reported.get("prompt_tokens_details") or {}).get("cached_tokens"),
        )
        return ModelReply(
            content=message.get("content"),
            native_tool_calls=list(message.get("tool_calls") or []),
            reasoning=message.get("reasoning_content") or message.get("reasoning"),
            usage=usage,
            finish_reason=choice.get("finish_reason"),
            raw=raw,
            latency=latency,
            cost=self._cost(usage),
        )

    def _cost(self, usage: Usage) -> float | None:
        prices = self.settings.prices
        if prices is None:
            return None
        return (usage.prompt_tokens * prices.input + usage.completion_tokens * prices.output) / 1_000_000

    def _with_retries(
        self,
        send: Callable[[float], T],
        deadline: float | None = None,
        progress: ModelProgress | None = None,
    ) -> tuple[T, float]:
        """Run `send(timeout)`, retrying transient failures with full-jitter backoff; return it and its latency.

        Raises `OutOfTime` when `deadline` (monotonic seconds) comes first, `ModelError` when
        the retries are spent or the failure is not transient.
        """
        url = self.url
        attempts = self.settings.retries + 1
        attempt = 0
        while True:
            attempt += 1
            retry_after = None
            timeout = self._time_for_attempt(deadline, attempt, attempts)
            started = time.monotonic()
            try:
                with _announce_waiting(progress, self.wait_notice, attempt, attempts):
                    return send(timeout), time.monotonic() - started
            except openai.APIStatusError as exc:
                problem, detail = "kept failing", self._transient_status(exc)
                reason = f"HTTP {exc.status_code}"
                retry_after = retry_after_seconds(exc.response.headers)
            except openai.APIConnectionError as exc:
                if not (isinstance(exc, openai.APITimeoutError) or cut_at_deadline(exc.request)):
                    problem, detail = "unreachable", self._redact(_connection_failure(exc))
                    reason = "a connection failure"
                else:  # no whole reply within the timeout: none at all, or one trickling in too slowly
                    self._time_for_attempt(deadline, attempt, attempts)  # the deadline cut it short
                    problem, detail, reason = "timed out", f"no reply within {timeout:g}s", "a timeout"
            if attempt >= attempts:
                noun = "attempt" if attempt == 1 else "attempts"
                kind = NoReply if problem == "timed out" else ModelError
                raise kind(f"model server at {url} {problem} after {attempt} {noun}: {detail}")
            wait = self._backoff(attempt, retry_after)
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise OutOfTime(f"the time limit comes before the model server at {url} may be asked again "
                                f"({detail})")
            if progress is not None:
                progress("model_retry", {"attempt": attempt + 1, "attempts": attempts, "reason": reason,
                                         "wait": round(wait, 1)})
            self._sleep(wait)

    def _time_for_attempt(self, deadline: float | None, attempt: int, attempts: int) -> float:
        """The request timeout, capped by the time left before `deadline`; `OutOfTime` when none is left."""
        if deadline is None:
            return self.settings.request_timeout
        left = deadline - time.monotonic()
        if left < MIN_REQUEST_SECONDS:
            raise OutOfTime(f"the time limit came while waiting for the model server at {self.url} "
                            f"(attempt {attempt}/{attempts})")
        return min(self.settings.request_timeout, left)

    def _transient_status(self, exc: openai.APIStatusError) -> str:
        """Describe a retryable HTTP error, or raise at once for one that retrying cannot fix."""
        status, message = exc.status_code, self._redact(_server_message(exc))
        url, name = self.url, self.settings.name
        if status in (400, 413) and (_CONTEXT_OVERFLOW.search(message) or exc.code == "context_length_exceeded"):
            raise ContextLengthExceeded(f"the prompt does not fit the context window of {name}: {message}") from exc
        if status in _TRANSIENT_STATUS or status >= 500:
            return f"HTTP {status}: {message}"
        if status in (401, 403):
            raise ModelError(
                f"model server at {url} refused the API key (HTTP {status}): {message}; "
                "set OPENAI_API_KEY or model.api_key"
            ) from exc
        if status == 404:
            hint = _not_found_hint(url)
            raise ModelError(f"model {name!r} not found at {url} (HTTP 404): {message}; {hint}") from exc
        raise ModelError(f"model server at {url} rejected the request (HTTP {status}): {message}") from exc

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """The server's Retry-After when it gave one, else full jitter; never above the max."""
        ceiling = self.settings.retry_backoff_max
        if retry_after is not None:
            return min(retry_after, ceiling)
        return random.uniform(0, min(ceiling, self.settings.retry_backoff_base * 2 ** (attempt - 1)))


@contextmanager
def _announce_waiting(progress: ModelProgress | None, every: float, attempt: int, attempts: int) -> Iterator[None]:
    """While the body runs, tell `progress` every `every` seconds how long the request has waited."""
    if progress is None or every <= 0:
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not done.wait(every):
            progress("model_wait", {"seconds": round(time.monotonic() - started), "attempt": attempt,
                                    "attempts": attempts})

    ticker = threading.Thread(target=tick, name="model-wait", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header, given as a number or as an HTTP date."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


# Paths the client appends to the base URL itself: a base URL ending in one 404s (`.../chat/completions/chat/completions`).
_ENDPOINT_PATHS = ("/chat/completions", "/completions", "/models")


def _not_found_hint(url: str) -> str:
    """What to check after a 404: the base URL's path, else the model name.

    OpenAI-compatible servers serve under `/v1`, so a URL without it 404s; a URL copied with
    an endpoint path (`/v1/chat/completions`) 404s too, and adding `/v1` would not help.
    """
    parts = urlparse(url)
    path = parts.path.rstrip("/")
    endpoint = next((end for end in _ENDPOINT_PATHS if path.endswith(end)), None)
    if endpoint is not None:
        base = parts._replace(path=path.removesuffix(endpoint)).geturl()
        return f"the URL ends in the endpoint path {endpoint}: drop it (try {base}), the client adds it, or check model.name"
    if not path.endswith("/v1"):
        suggested = url.rstrip("/") + "/v1"
        return f"the URL may lack /v1 (try {suggested}), or check model.name"
    return "check model.name"


def _server_message(exc: openai.APIStatusError) -> str:
    """The server's own words, whichever error shape it uses, squeezed onto one short line."""
    body = exc.body
    message: Any = body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error") or body
    text = " ".join(str(message or exc.message).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _connection_failure(exc: openai.APIConnectionError) -> str:
    cause = exc.__cause__
    text = str(cause) if cause is not None and str(cause) else type(cause or exc).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", text)


_WARNED: set[str] = set()


def _users_profile(settings: ModelSettings) -> Profile:
    """The profile the user's own settings pick: without the repository's `model.name` and `model.profile`
    (a repository's value is in effect only where the user kept the default, so that default stands in)."""
    if not (settings.from_repository("name") or settings.from_repository("profile")):
        return pick_profile(settings.name, settings.profile)
    fields = ModelSettings.model_fields
    name = fields["name"].default if settings.from_repository("name") else settings.name
    return pick_profile(name, fields["profile"].default if settings.from_repository("profile") else settings.profile)


def _warn_once(message: str) -> None:
    """A warning line on stderr, once per process: a run's endpoint pools and attempts each make their clients."""
    if message not in _WARNED:
        _WARNED.add(message)
        warn_on_stderr(message)


def _entries(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of a JSON-like `value`, at any depth (tables inside tables and lists)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        if isinstance(key, str):
            yield key, inner
        yield from _entries(inner)


def _bounded(value: Any, bound: int) -> Any:
    """A copy of `value` (extra_body, or a part of it) with every reply bound at any depth within `bound`
    tokens: one that is not a positive integer (`n_predict = -1`) becomes `bound`, `min_tokens` stays at
    most `bound`; `value` itself is left as it is."""
    if isinstance(value, list):
        return [_bounded(item, bound) for item in value]
    if not isinstance(value, dict):
        return value
    copy = {key: _bounded(inner, bound) for key, inner in value.items()}
    for key in REPLY_BOUND_KEYS[:-1]:
        if key in copy:
            copy[key] = min(copy[key], bound) if _positive_int(copy[key]) else bound
    if _positive_int(copy.get("min_tokens")) and copy["min_tokens"] > bound:
        copy["min_tokens"] = bound
    return copy


def _positive_int(value: Any) -> bool:
    """A reply bound a server takes as one: -1 (llama.cpp's "unbounded"), 0, floats and strings are not."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
