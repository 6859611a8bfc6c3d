"""Environment checks for `agent doctor`: each a line, with the fix when it fails."""

from __future__ import annotations

from collections.abc import Iterator
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


def run_checks(path: Path, probe_model: bool = True) -> Iterator[Check]:
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
    settings = yield from _config_checks(path)
    if settings is not None and probe_model:
        yield from model_checks(settings)


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


def model_checks(settings) -> Iterator[Check]:
    from agent.model import ModelError, OpenAIModel
    from agent.toolcalls import parse_reply, render_tool_instructions

    probe = settings.model.model_copy(update={"retries": 0, "request_timeout": min(settings.model.request_timeout, 60)})
    model = OpenAIModel(probe)
    where = settings.model.base_url
    try:
        models = model.list_models()
    except ModelError as exc:
        yield Check(False, f"model endpoint {where}: {exc}", "start the server or set OPENAI_BASE_URL / --base-url")
        return
    names = [m.get("id", "?") for m in models]
    yield Check(True, f"model endpoint {where} serves: {', '.join(names) or 'no models'}")
    if settings.model.name not in names:
        yield Check(False, f"model {settings.model.name!r} is not served there",
                    f"set AGENT_MODEL to one of: {', '.join(names)}")
        return
    yield Check(True, f"context window {model.context_window():,} tokens (profile {model.profile.name})")
    user = {"role": "user", "content": PING_PROMPT}
    try:
        reply = model.query([user], [PING_TOOL])
        if reply.native_tool_calls:
            yield Check(True, "native tool calling works")
            return
        found = parse_reply(reply.content, [PING_TOOL], "auto").calls
        yield Check(True, "native tool calling: the server returns calls as text "
                    + ("(read in auto mode)" if found else "(no call seen)"), warning=True)
    except ModelError as exc:
        yield Check(True, f"native tool calling unavailable: {exc}", warning=True)
    for fmt in ("xml", "hermes"):
        system = {"role": "system", "content": render_tool_instructions([PING_TOOL], fmt)}
        try:
            reply = model.query([system, user], [])
        except ModelError as exc:
            yield Check(False, f"{fmt} text tool calls: {exc}")
            continue
        calls = parse_reply(reply.content, [PING_TOOL], fmt).calls
        yield Check(bool(calls), f"{fmt} text tool calls " + ("work" if calls else "were not produced"),
                    f"set model.tool_format = \"{'hermes' if fmt == 'xml' else 'xml'}\"", warning=not calls)


def git_check() -> Check:
    """Git, through GitPython: its version, or how to get it."""
    try:
        import git

        version = git.Git().version_info
    except ImportError:  # GitPython refuses to load when there is no git command
        return Check(False, "git not found", "install git")
    return Check(True, f"git {'.'.join(map(str, version))}")
