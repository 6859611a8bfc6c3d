"""Environment checks for `agent doctor`: each a line, with the fix when it fails."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.errors import AgentError

PING_TOOL = {
    "type": "function",
    "function": {
        "name": "ping",
        "description": "Reply to a health check.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
}
PING_PROMPT = "This is a health check. Call the ping tool with text 'ok'. Do not answer in prose."


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    fix: str = ""
    warning: bool = False  # shown, but not a failure


Status = Callable[[str], None]  # the live line: what doctor is doing or waiting for right now


def _quiet(text: str) -> None:
    pass


def run_checks(path: Path, probe_model: bool = True, status: Status = _quiet) -> Iterator[Check]:
    """Each check as it is made; `status` hears what is under way (a request, how long it has waited)."""
    from sandbox.base import SandboxError
    from sandbox.docker import connect
    from sandbox.images import default_image, image_exists

    yield git_check()
    try:
        client = connect(timeout=10)
        yield Check(True, f"Docker {client.version().get('Version', '?')} reachable")
        tag = default_image()
        yield Check(image_exists(client, tag), f"default sandbox image {tag}", "build it with 'agent sandbox build'")
        yield leftover_check(client)
    except SandboxError as exc:
        yield Check(False, str(exc))
    yield scratch_check()
    settings = yield from _config_checks(path)
    if settings is not None and probe_model:
        yield from model_checks(settings, status)


def leftover_check(client) -> Check:
    """Sandbox containers on this engine: a warning naming those whose run is gone (killed, crashed)."""
    from sandbox.cleanup import leftovers

    found = leftovers(client)
    orphans = [item for item in found if item.owner == "gone"]
    if not orphans:
        running = f" ({len(found)} of live or other-host runs)" if found else ""
        return Check(True, f"no leftover sandbox containers{running}")
    listed = ", ".join(f"{item.id[:12]} (run {item.run_id}, pid {item.pid})" for item in orphans[:5])
    more = f" and {len(orphans) - 5} more" if len(orphans) > 5 else ""
    return Check(True, f"{len(orphans)} leftover sandbox container(s) of runs that are gone: {listed}{more}",
                 "remove them with 'agent sandbox prune'", warning=True)


def scratch_check() -> Check:
    """Temporary copies of repositories left by runs that were killed (`kill -9`): a warning naming them."""
    from sandbox.cleanup import stale_scratch

    found = stale_scratch()
    if not found:
        return Check(True, "no leftover temporary copies")
    listed = ", ".join(str(path) for path in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    return Check(True, f"{len(found)} leftover temporary cop{'ies' if len(found) > 1 else 'y'} of runs that are gone: "
                 f"{listed}", "remove them with 'agent sandbox prune' (the next 'agent fix' does too)", warning=True)


def _config_checks(path: Path):
    from agent.config import load_settings, user_config_path
    from agent.workspace import UserRepo

    try:
        root = UserRepo.find(path).root
    except AgentError:
        root = None
    user_file, _ = user_config_path(__import__("os").environ)
    found = [str(p) for p in (user_file, root / ".agent.toml" if root else None) if p and p.is_file()]
    try:
        settings = load_settings(root)
    except AgentError as exc:
        yield Check(False, f"config: {exc}", "fix the value named above")
        return None
    yield Check(True, "config files: " + (", ".join(found) if found else "none (defaults and environment)"))
    return settings


PROBE_SAMPLES = 3  # one sample decided each format before; a small model gets it right only some of the time
PROBE_MAX_TOKENS = 128  # a ping call is a few dozen tokens; a rambling reply is cut here
PROBE_TIMEOUT = 30.0  # seconds one probe request may take (a ping is short; a cold CPU server needs some)
MODEL_CHECKS_BUDGET = 120.0  # seconds all model checks may take together: a wedged server never holds doctor longer
WAIT_NOTICE = 5.0  # seconds between live updates while a request waits


def model_checks(settings, status: Status = _quiet) -> Iterator[Check]:
    """The endpoint, its models, its context window and the tool-call formats, within MODEL_CHECKS_BUDGET.

    Every request's timeout is the smaller of `model.request_timeout`, PROBE_TIMEOUT and the
    budget left; a format whose request timed out is not sampled again, and after a timeout
    no other format is tried (the server is not answering).
    """
    from agent.model import ModelError, OpenAIModel

    probe = settings.model.model_copy(update={
        "retries": 0, "request_timeout": min(settings.model.request_timeout, PROBE_TIMEOUT),
        "max_tokens": PROBE_MAX_TOKENS})
    model = OpenAIModel(probe, wait_notice=WAIT_NOTICE)
    where = model.url
    deadline = time.monotonic() + MODEL_CHECKS_BUDGET
    status(f"asking {where} for its models")
    try:
        models = model.list_models(deadline=deadline)
    except ModelError as exc:
        yield Check(False, f"model endpoint {where}: {exc}", "start the server or set OPENAI_BASE_URL / --base-url")
        return
    names = [m.get("id", "?") for m in models]
    yield Check(True, f"model endpoint {where} serves: {', '.join(names) or 'no models'}")
    if settings.model.name not in names:
        yield Check(False, f"model {settings.model.name!r} is not served there",
                    f"set AGENT_MODEL to one of: {', '.join(names)}")
        return
    status(f"asking {where} for its context window")
    yield Check(True, f"context window {model.context_window(deadline):,} tokens (profile {model.profile.name})")
    yield from format_checks(model, settings.model.tool_format, status, deadline)


def format_checks(model, configured: str, status: Status = _quiet, deadline: float | None = None) -> Iterator[Check]:
    """Sample each tool-call format a few times, then recommend one setting; fail when none works.

    After a request that timed out (or ran out of `deadline`) the formats not yet tried are
    skipped: a server that does not answer one will not answer the next either.
    """
    native = probe_format(model, "native", status, deadline)
    yield Check(True, f"native tool calls: {native.describe()}", warning=native.ok < PROBE_SAMPLES)
    texts: dict[str, FormatProbe] = {}
    for fmt in ("xml", "hermes"):
        if any(p.timed_out for p in (native, *texts.values())):
            texts[fmt] = FormatProbe(fmt, error="not tried: the server did not answer in time")
        else:
            texts[fmt] = probe_format(model, fmt, status, deadline)
        yield Check(True, f"{fmt} text tool calls: {texts[fmt].describe()}", warning=texts[fmt].ok < PROBE_SAMPLES)
    if any(p.timed_out for p in (native, *texts.values())) and not any(p.ok for p in (native, *texts.values())):
        yield Check(False, f"the model server at {model.url} did not answer a health-check request in time "
                    f"({native.error or 'no reply'})",
                    "check that the server is up and not overloaded (a first request on a CPU server can be slow: "
                    "raise model.request_timeout)")
        return
    ranked = sorted([native, *texts.values()], key=lambda p: (p.ok, p.fmt == "native",
                                                              p.fmt == model.text_tool_format), reverse=True)
    best = ranked[0]
    if best.ok == 0:
        yield Check(False, f"no tool-call format worked in {PROBE_SAMPLES} tries each: runs would end in format_error",
                    "use a model or server that can call tools (for llama.cpp start llama-server with --jinja)")
        return
    # What `auto` does: native calls while they come back; else the profile's text format.
    auto = "native" if native.ok * 2 > PROBE_SAMPLES else model.text_tool_format
    auto_ok = native.ok if auto == "native" else texts[auto].ok
    choice = "auto" if auto_ok >= best.ok else best.fmt
    said = f"tool_format = \"{choice}\"" + (f" ({auto} calls)" if choice == "auto" else "")
    if choice == configured:
        yield Check(True, f"tool-call format: {said}, as configured")
    else:
        yield Check(True, f"tool-call format: {configured} is configured; {choice} works best here", warning=True,
                    fix=f"set model.tool_format = \"{choice}\" (or --tool-format {choice})")


@dataclass
class FormatProbe:
    """How one tool-call format fared over PROBE_SAMPLES health-check requests."""

    fmt: str
    ok: int = 0
    tries: int = 0
    as_text: int = 0  # native only: calls that came back written as text
    error: str = ""
    timed_out: bool = False  # a request got no answer in time: sampling stopped there

    def describe(self) -> str:
        if self.error and not self.tries:
            return f"unavailable ({self.error})"
        said = f"{self.ok}/{self.tries} replies had a valid call"
        if self.as_text:
            said += f"; {self.as_text} wrote the call as text (auto then switches to text calls)"
        return said + (f"; {self.error}" if self.error else "")


def probe_format(model, fmt: str, status: Status = _quiet, deadline: float | None = None) -> FormatProbe:
    """Ask for the ping call PROBE_SAMPLES times in `fmt` ("native", "xml" or "hermes"); count the valid calls.

    Stops at the first error: a refusal (no tool parser, a 400) will not change on a second
    try, and a request that timed out would only time out again.
    """
    from agent.model import ModelError, NoReply, OutOfTime
    from agent.toolcalls import parse_reply, render_tool_instructions

    result = FormatProbe(fmt)
    user = {"role": "user", "content": PING_PROMPT}
    for sample in range(1, PROBE_SAMPLES + 1):
        doing = f"asking {model.url} for a {fmt} tool call ({sample}/{PROBE_SAMPLES})"
        status(doing)

        def waited(kind: str, news: dict) -> None:
            if kind == "model_wait":
                status(f"{doing}: waiting for the model server, {news['seconds']} s")

        try:
            if fmt == "native":
                reply = model.query([user], [PING_TOOL], deadline=deadline, progress=waited)
            else:
                system = {"role": "system", "content": render_tool_instructions([PING_TOOL], fmt)}
                reply = model.query([system, user], [], deadline=deadline, progress=waited)
        except ModelError as exc:
            result.error = str(exc)
            result.timed_out = isinstance(exc, (NoReply, OutOfTime))
            break
        result.tries += 1
        if fmt == "native":
            calls = parse_reply(reply.content, [PING_TOOL], "native", native_calls=reply.native_tool_calls).calls
            result.ok += bool(reply.native_tool_calls and calls)
            result.as_text += bool(not reply.native_tool_calls and parse_reply(reply.content, [PING_TOOL], "auto").calls)
        else:
            result.ok += bool(parse_reply(reply.content, [PING_TOOL], fmt).calls)
    return result


def git_check() -> Check:
    """Git, through GitPython: its version, or how to get it."""
    try:
        import git

        version = git.Git().version_info
    except ImportError:  # GitPython refuses to load when there is no git command
        return Check(False, "git not found", "install git")
    return Check(True, f"git {'.'.join(map(str, version))}")
