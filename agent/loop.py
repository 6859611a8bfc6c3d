"""The planner loop: query the model, run the tools it calls, append what they said.

    step = execute(query())

Runs end through exceptions that carry their status into the trajectory: a tool raises
`Submitted`; the loop raises `LimitsExceeded` and `FormatError`; the model client raises
`ModelError` (`OutOfTime` when the time limit comes during a request: `time_limit`); the
sandbox raises `SandboxError`; Ctrl-C is `KeyboardInterrupt`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agent.config import LoopSettings, Settings
from agent.errors import UsageError
from agent.history import History, Message
from agent.instructions import prefixed_template
from agent.model import ContextLengthExceeded, Model, ModelError, ModelReply, OutOfTime
from agent.prompts import Prompts
from agent.run_result import RunResult
from agent.toolcalls import ParsedReply, ToolCall, parse_reply, render_assistant_text, render_tool_instructions
from agent.trajectory import TrajectoryWriter
from sandbox.base import Sandbox, SandboxError
from sandbox.deadline import TimeBoxed
from sandbox.output import cap_text
from tools.base import Observation, Submitted, Tool, ToolContext, call_tool
from tools.overview import prompt_section
from tools.submit import current_patch
from tools.toolset import build_toolset

STATUSES = ("submitted", "step_limit", "token_limit", "time_limit", "cost_limit", "format_error",
            "repeated_action", "model_error", "sandbox_error", "interrupted")


class AgentExit(Exception):
    """Ends the run with `status`."""

    status = "error"

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status or self.status


class LimitsExceeded(AgentExit):
    pass


class FormatError(AgentExit):
    status = "format_error"


CONTEXT_MARGIN = 1024  # tokens kept free below the context window
KEEP_RECENT_MESSAGES = 12  # what compaction leaves verbatim at the end, when it fits
# After compaction the prompt should fill at most this share of the window, so the next
# compaction is many steps away instead of one or two (seen with an 8,192-token window).
COMPACTED_SHARE = 0.5
CHARS_PER_TOKEN = 4  # for estimates between two real token counts from the server


Listener = Callable[[str, dict[str, Any]], None]


class Agent:
    """One run of the loop over one task; `listener` sees events for live progress."""

    def __init__(
        self,
        model: Model,
        tools: list[Tool],
        ctx: ToolContext,
        *,
        settings: LoopSettings | None = None,
        prompts: Prompts | None = None,
        tool_format: str = "auto",
        text_format: str = "xml",
        trajectory: TrajectoryWriter | None = None,
        listener: Listener | None = None,
        final_patch: Callable[[ToolContext], str] | None = None,
        files: list[str] | None = None,
    ) -> None:
        self.model, self.ctx = model, ctx
        self.known_files = files  # the repository's paths, when the workflow knows them (tools.overview)
        self.tools = {tool.spec.name: tool for tool in tools}
        self.specs = [tool.spec.to_openai() for tool in tools]
        self.limits = settings or LoopSettings()
        self.prompts = prompts or Prompts.load()
        self.tool_format = tool_format
        self.text_format = tool_format if tool_format in ("hermes", "xml") else text_format
        self.native = tool_format in ("auto", "native")
        self.trajectory = trajectory
        self.listener = listener
        self.final_patch = final_patch
        self.history = History(observation_max_chars=self.limits.observation_max_chars)
        self.steps = self.prompt_tokens = self.completion_tokens = self.format_errors = self.compactions = 0
        self.empty_replies = 0  # replies in a row with nothing in them (`_empty_reply`)
        self.repeats = 0  # how many times in a row the last step's calls and results came back unchanged
        self._last_actions: list[tuple[str, str, str]] = []
        self.native_seen = False  # a native tool call came back at least once in this run
        # `auto`: replies so far with no native call; two, or one with a call written as text (even a
        # malformed one), switch to text calls.
        self.replies_without_native = 0
        self.model_time = 0.0
        self.cost: float | None = None
        self._files = ""  # the task prompt's repository overview (tools.overview), listed once per run
        self.last_tests: dict[str, Any] | None = None
        self.started = time.monotonic()

    # -- the run ----------------------------------------------------------
    def run(self, task: str, config: dict[str, Any] | None = None, resume: list[Message] | None = None) -> RunResult:
        """Run until an exit; `resume`: start from these messages (a follow-up) instead of system + task.

        The trajectory's `request` events hold each request's new messages (all of them when the
        history was rebuilt, which then starts with the system message) and `end` holds those
        added after the last request, so the conversation can be read back whole.
        """
        self.started = time.monotonic()
        self._emit("start", task=task, config=config or {}, tools=self.specs, tool_format=self.tool_format,
                   context_window=self.model.context_window(self._deadline()), max_tokens=self.model.max_tokens)
        self._files = prompt_section(self._tool_context(), known=self.known_files) if resume is None else ""
        self._reset_history(task)
        if resume is not None:
            self._resume(resume)
        self.ctx.observation_max_chars = min(self.ctx.observation_max_chars, self._observation_cap())
        patch, status, message = "", "error", ""
        extra: dict[str, Any] = {}
        try:
            while True:
                self.step()
        except Submitted as done:
            patch, status, message = done.patch, "submitted", str(done)
        except AgentExit as exc:
            status, message = exc.status, str(exc)
        except OutOfTime as exc:
            status, message = "time_limit", f"reached the time limit ({self.limits.time_limit or 0:.0f}s): {exc}"
        except ModelError as exc:
            status, message = "model_error", str(exc)
        except SandboxError as exc:
            status, message = "sandbox_error", str(exc)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM through sandbox.cleanup.Interrupted
            status, message = "interrupted", "interrupted by the user"
            signum = getattr(exc, "signum", None)
            if signum:
                message, extra["signal"] = str(exc), signum
        if status not in ("submitted", "sandbox_error", "interrupted") and self.final_patch is not None:
            patch = self._salvage_patch()
        result = RunResult(
            status=status, message=message, patch=patch, steps=self.steps, prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens, cost=self.cost, elapsed=round(time.monotonic() - self.started, 3),
            prefix_reuse=self.history.stats.reuse, compactions=self.compactions, last_tests=self.last_tests,
            model_time=round(self.model_time, 3),
            extra=extra,
        )
        self._emit("end", **{k: v for k, v in result.__dict__.items() if k != "extra"}, new_messages=self._unsent())
        return result

    def step(self) -> None:
        self.execute(self.query())

    # -- querying ---------------------------------------------------------
    def query(self) -> ModelReply:
        self._check_limits()
        self.steps += 1
        self._maybe_compact()
        self._emit("thinking", step=self.steps)
        try:
            reply = self._ask()
        except ContextLengthExceeded as exc:
            self._compact(reason=str(exc))
            reply = self._ask()
        self._account(reply)
        prefix = self.history.record_request(reply.usage.prompt_tokens, self.specs if self.native else None)
        self._last_prompt_tokens, self._last_prompt_chars = prefix["prompt_tokens"], prefix["prompt_chars"]
        self._emit("request", step=self.steps, **prefix, new_messages=self._unsent())
        return reply

    def _account(self, reply: ModelReply) -> None:
        """Every reply counts towards the totals and limits, compaction summaries included."""
        self.prompt_tokens += reply.usage.prompt_tokens
        self.completion_tokens += reply.usage.completion_tokens
        self.model_time += reply.latency
        if reply.cost is not None:
            self.cost = (self.cost or 0.0) + reply.cost

    def _ask(self) -> ModelReply:
        try:
            return self._query_model(self.history.messages, self.specs if self.native else [])
        except ModelError as exc:
            if not (self.tool_format == "auto" and self.native and self.steps == 1 and not self.native_seen
                    and _rejects_tools(exc)):
                raise
        # The server refused native tools (no tool parser): describe them in the prompt instead.
        self.native = False
        self._emit("tool_format", native=False, format=self.text_format)
        self._reset_history(self._task)
        return self._query_model(self.history.messages, [])

    def _query_model(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        """Ask the model within the time left; its waits and retries go to the listener as they happen."""
        return self.model.query(messages, tools, deadline=self._deadline(), progress=self._model_progress)

    def _tool_context(self) -> ToolContext:
        """The tools' context, whose sandbox caps every command by the time left (`sandbox.deadline`)."""
        deadline = self._deadline()
        return self.ctx if deadline is None else replace(self.ctx, sandbox=TimeBoxed(self.ctx.sandbox, deadline))

    def _deadline(self) -> float | None:
        """When the run's time limit comes, in `time.monotonic()` seconds; None without one."""
        return self.started + self.limits.time_limit if self.limits.time_limit else None

    def _model_progress(self, kind: str, data: dict[str, Any]) -> None:
        """Retries are part of the run's record; "still waiting" ticks (from a helper thread) are only shown."""
        if kind == "model_retry":
            self._emit(kind, step=self.steps, **data)
        elif self.listener is not None:
            self.listener(kind, {"step": self.steps, **data})

    # -- executing --------------------------------------------------------
    def execute(self, reply: ModelReply) -> None:
        parsed = parse_reply(reply.content, self.specs, self.tool_format, native_calls=reply.native_tool_calls,
                             reasoning=reply.reasoning)
        self._emit("response", step=self.steps, content=reply.content, tool_calls=reply.native_tool_calls,
                   reasoning=parsed.reasoning, usage=reply.usage.__dict__, finish_reason=reply.finish_reason,
                   latency=reply.latency, cost=reply.cost)
        native_calls = bool(reply.native_tool_calls) and all(c.id for c in parsed.calls)
        self.native_seen = self.native_seen or native_calls
        if self.tool_format == "auto" and self.native and not self.native_seen:
            self.replies_without_native += 1
            if parsed.calls or parsed.errors or self.replies_without_native >= 2:
                self._fall_back_to_text("the model wrote its call as text" if parsed.calls or parsed.errors
                                        else "no native tool call came back")
        if not (parsed.calls or parsed.errors or parsed.reasoning or (reply.content or "").strip()):
            self._empty_reply()
            return
        self.empty_replies = 0
        self.history.append(self._assistant_message(parsed, native_calls))
        if not parsed.calls:
            self._check_repeats([])  # a reply without a call breaks a run of repeats
            self._format_error(parsed.errors or ["your reply contained no tool call"])
            return
        # Some calls ran: the malformed ones next to them are reported, not counted as a format error.
        self.format_errors = 0
        observations: list[tuple[ToolCall, Observation]] = []
        try:
            for call in parsed.calls:
                observations.append((call, self._run_call(call)))
        finally:
            self._append_observations(observations, native_calls, parsed.errors)
        self._check_repeats(observations)

    def _check_repeats(self, observations: list[tuple[ToolCall, Observation]]) -> None:
        """Same calls, same results, step after step: say so once, then end the run."""
        actions = [(call.name, _json(call.arguments), obs.text) for call, obs in observations]
        self.repeats = self.repeats + 1 if actions and actions == self._last_actions else 0
        self._last_actions = actions
        limit = self.limits.repeat_limit
        if not limit or self.repeats + 1 < limit:
            return
        first = observations[0][0]
        call = f"{first.name} {' '.join(_json(first.arguments).split())[:120]}"
        if self.repeats + 1 > limit:
            raise AgentExit(f"the same call ({call}) with the same result {self.repeats + 1} times in a row",
                            "repeated_action")
        self._emit("repeated_action", step=self.steps, call=call, count=self.repeats + 1)
        self.history.append({"role": "user", "content": Prompts.render(self.prompts.repeated_action, call=call,
                                                                         count=self.repeats + 1)})

    def _run_call(self, call: ToolCall) -> Observation:
        tool = self.tools.get(call.name)
        self._emit("tool_start", step=self.steps, name=call.name, arguments=call.arguments)
        started = time.monotonic()
        if tool is None:
            obs = Observation(f"Unknown tool {call.name!r}. Available tools: {', '.join(self.tools)}.", is_error=True)
        else:
            try:
                obs = call_tool(tool, call.arguments, self._tool_context())
            except Submitted as done:
                self._emit("tool", step=self.steps, name=call.name, arguments=call.arguments,
                           observation=str(done), is_error=False, duration=round(time.monotonic() - started, 4))
                raise
        if obs.data.get("kind") == "tests":
            self.last_tests = obs.data
        self._emit("tool", step=self.steps, name=call.name, arguments=call.arguments, observation=obs.text,
                   is_error=obs.is_error, data=obs.data, duration=round(time.monotonic() - started, 4))
        return obs

    def _assistant_message(self, parsed: ParsedReply, native_calls: bool) -> dict[str, Any]:
        if native_calls:
            return {"role": "assistant", "content": parsed.content or None, "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _json(c.arguments)}}
                for c in parsed.calls
            ]}
        text = parsed.content
        if parsed.calls:
            text = (text + "\n" if text else "") + render_assistant_text(parsed.calls, self.text_format)
        return {"role": "assistant", "content": text}

    def _append_observations(self, observations: list[tuple[ToolCall, Observation]], native_calls: bool,
                             errors: list[str]) -> None:
        """Tool results, then what was wrong with the reply's other calls (which were not run)."""
        if errors:
            self._emit("format_error", step=self.steps, errors=errors, consecutive=0)
        note = ("Some of your tool calls were not run:\n" + "\n".join(f"- {e}" for e in errors)) if errors else ""
        if native_calls:
            for call, obs in observations:
                self.history.append_observation({"role": "tool", "tool_call_id": call.id, "content": obs.text})
            if note:
                self.history.append({"role": "user", "content": note})
        elif observations or note:
            body = "\n".join([*(f"<tool_response>\n{obs.text}\n</tool_response>" for _, obs in observations),
                              *([note] if note else [])])
            self.history.append_observation({"role": "user", "content": body})

    def _empty_reply(self) -> None:
        """A reply with nothing in it counts as a format error, but goes into no message: the first is asked
        again as it was (sampled anew), later ones get the format-error feedback without the empty turn.

        Qwen2.5-Coder-1.5B on llama.cpp, after a failing test, answered "\\n"; with that empty turn kept in
        the conversation, every later reply came back empty too and the run ended as format_error
        (benchmarks/real_model.py)."""
        self.empty_replies += 1
        self._check_repeats([])
        self._format_error(["your reply was empty"], feedback=self.empty_replies > 1)

    def _format_error(self, errors: list[str], feedback: bool = True) -> None:
        self.format_errors += 1
        self._emit("format_error", step=self.steps, errors=errors, consecutive=self.format_errors)
        if self.format_errors >= self.limits.max_format_errors:
            raise FormatError(f"{self.format_errors} replies in a row had no valid tool call: {errors[-1]}")
        if not feedback:
            return
        syntax = "" if self.native else " in this syntax:\n" + render_assistant_text(
            [ToolCall(name="TOOL_NAME", arguments={"PARAMETER": "VALUE"}, id="")], self.text_format)
        # Small models that end with an empty reply once their edit is made copy a whole submit call.
        submit = "." if self.native or "submit" not in self.tools else ":\n" + render_assistant_text(
            [ToolCall(name="submit", arguments={}, id="")], self.text_format)
        text = Prompts.render(self.prompts.format_error, errors="\n".join(f"- {e}" for e in errors),
                              syntax=syntax, tools=", ".join(self.tools), submit=submit)
        self.history.append({"role": "user", "content": text})

    # -- limits and context -------------------------------------------------
    def _check_limits(self) -> None:
        if self.steps >= self.limits.step_limit:
            raise LimitsExceeded(f"reached the step limit ({self.limits.step_limit})", "step_limit")
        self._check_budgets()

    def _check_budgets(self) -> None:
        """Tokens, time and cost: checked before every request, compaction requests included."""
        lim = self.limits
        if lim.token_limit and self.prompt_tokens + self.completion_tokens >= lim.token_limit:
            raise LimitsExceeded(f"reached the token limit ({lim.token_limit})", "token_limit")
        if lim.time_limit and time.monotonic() - self.started >= lim.time_limit:
            raise LimitsExceeded(f"reached the time limit ({lim.time_limit:.0f}s)", "time_limit")
        if lim.cost_limit and (self.cost or 0.0) >= lim.cost_limit:
            raise LimitsExceeded(f"reached the cost limit ({lim.cost_limit})", "cost_limit")

    def _prompt_chars(self) -> int:
        """Characters of the next request as `History.record_request` counts them: tool schemas included."""
        return self.history.chars() + len(json.dumps(self.specs if self.native else [], sort_keys=True))

    def _estimate(self) -> float:
        """Prompt tokens of the next request: the last real count plus what was added since."""
        return self._last_prompt_tokens + (self._prompt_chars() - self._last_prompt_chars) / CHARS_PER_TOKEN

    def _maybe_compact(self) -> None:
        """Compact before a request that would not fit."""
        window = self.model.context_window(self._deadline())
        estimate = self._estimate()
        if estimate + self._reply_budget() + CONTEXT_MARGIN > window:
            self._compact(reason=f"estimated {estimate:.0f} prompt tokens do not fit {window}")

    def _compact(self, reason: str) -> None:
        head = 2
        keep = self._recent_to_keep(head)
        if len(self.history.messages) <= head + keep or keep < 2:
            raise AgentExit(f"the context window is too small for this task ({reason})", "model_error")
        self._check_budgets()
        middle = self.history.messages[head:len(self.history.messages) - keep]
        budget = max(4000, (self.model.context_window(self._deadline()) - self._reply_budget()) * 2)
        transcript, _ = cap_text("\n\n".join(f"[{m['role']}] {m.get('content') or _json(m.get('tool_calls'))}"
                                             for m in middle), budget)
        request = [self.history.messages[0], {"role": "user", "content": Prompts.render(
            self.prompts.compaction, transcript=transcript)}]
        reply = self._query_model(request, [])
        self._account(reply)
        summary = reply.content or ""
        before, after = self.history.compact(Prompts.render(self.prompts.compacted, summary=summary), head, keep)
        self._sent_count = 0  # the next request event records the rebuilt history whole
        self.compactions += 1
        self._emit("compaction", step=self.steps, reason=reason, messages_before=before, messages_after=after,
                   summary=summary, usage=reply.usage.__dict__, latency=reply.latency, cost=reply.cost)
        self._check_budgets()

    def _recent_to_keep(self, head: int) -> int:
        """Recent messages kept verbatim: up to KEEP_RECENT_MESSAGES, fewer when they would refill the window.

        The kept tail, the head and a summary as long as a reply may be should fill at most
        COMPACTED_SHARE of what the window leaves for prompts; at least the last two messages
        stay, and at least two older ones go into the summary.
        """
        usable = self.model.context_window(self._deadline()) - self._reply_budget() - CONTEXT_MARGIN
        schemas = self._prompt_chars() - self.history.chars()
        head_chars = sum(len(_json(m)) for m in self.history.messages[:head]) + schemas
        room = (usable * COMPACTED_SHARE - self._reply_budget()) * CHARS_PER_TOKEN - head_chars
        most = min(KEEP_RECENT_MESSAGES, len(self.history.messages) - head - 2)  # something must be summarised
        keep, tail = 0, 0
        for message in reversed(self.history.messages[head:]):
            if keep >= most or (keep >= 2 and tail + len(_json(message)) > room):
                break
            keep, tail = keep + 1, tail + len(_json(message))
        return keep

    def _reply_budget(self) -> int:
        return self.model.max_tokens or min(4096, self.model.context_window(self._deadline()) // 8)

    def _fall_back_to_text(self, why: str) -> None:
        """`auto` on a server that takes `tools` but whose model writes calls as text: describe them in the prompt.

        Only before the first native call: the system message gains the text syntax (one
        rewrite; dropping `tools` changes the rendered prompt's start anyway) and later
        requests carry no `tools`, so format errors can show the syntax to follow.
        """
        self.native = False
        self._emit("tool_format", native=False, format=self.text_format, reason=why)
        rest = self.history.messages[1:]
        self._reset_history(self._task)
        for message in rest[1:]:
            self.history.append(message)

    # -- bookkeeping --------------------------------------------------------
    def _reset_history(self, task: str) -> None:
        self._task = task
        system = Prompts.render(self.prompts.system, workdir=self.ctx.sandbox.workdir)
        if not self.native:
            system += "\n\n" + render_tool_instructions(self.specs, self.text_format)
        self.history = History(observation_max_chars=self._observation_cap())
        self.history.append({"role": "system", "content": system})
        self.history.append({"role": "user", "content": Prompts.render(self.prompts.task, task=task,
                                                                         workdir=self.ctx.sandbox.workdir,
                                                                         files=self._files)})
        self._sent_count = 0
        self._last_prompt_tokens = self._last_prompt_chars = 0

    def _resume(self, messages: list[Message]) -> None:
        """Continue a recorded conversation as it was sent, so the server's prefix cache still holds it.

        Its tool-call format is settled (the caller configures the one it used): no fallback
        rewrites it. The first request records every message, inherited ones included.
        """
        self.history = History(observation_max_chars=self._observation_cap())
        for message in messages:
            self.history.append(message)
        self.native_seen = self.native
        self._sent_count = 0

    def _observation_cap(self) -> int:
        """Characters one observation may keep: the setting, and at most an eighth of a small window."""
        return min(self.limits.observation_max_chars, self.model.context_window(self._deadline()) * CHARS_PER_TOKEN // 8)

    def _unsent(self) -> list[dict[str, Any]]:
        new = self.history.messages[self._sent_count:]
        self._sent_count = len(self.history.messages)
        return new

    def _salvage_patch(self) -> str:
        try:
            return self.final_patch(self.ctx) if self.final_patch else ""
        except Exception:
            return ""

    def _emit(self, kind: str, **data: Any) -> None:
        if self.trajectory is not None:
            self.trajectory.event(kind, **data)
        if self.listener is not None:
            self.listener(kind, data)


def _rejects_tools(exc: ModelError) -> bool:
    text = str(exc).lower()
    return "tool" in text and any(w in text for w in ("not supported", "enable-auto-tool-choice", "tool-call-parser",
                                                        "does not support", "unsupported", "tool choice"))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def toolset(names: list[str] | None) -> list[Tool]:
    """The configured tools; a bad name is a config error, reported before any work starts."""
    try:
        return build_toolset(names)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def configured_agent(
    model: Model,
    sandbox: Sandbox,
    settings: Settings,
    *,
    task: str,
    base_commit: str | None = None,
    cache_dir: str | None = None,
    loop: LoopSettings | None = None,
    trajectory: TrajectoryWriter | None = None,
    listener: Listener | None = None,
    instructions: str = "",
    files: list[str] | None = None,
) -> Agent:
    """An agent wired the way every workflow wants it: tools, limits, prompts and formats from settings.

    `instructions` is the repository's AGENTS.md block (agent.instructions), put before the task prompt.
    `files`: the repository's paths when the workflow knows them (the task prompt then lists them
    without asking the sandbox, which may still be starting); None lists them in the sandbox.
    """
    loop = loop or settings.loop
    prompts = Prompts.load(settings.prompts.model_dump())
    prompts = replace(prompts, task=prefixed_template(prompts.task, instructions))
    ctx = ToolContext(
        sandbox=sandbox, task=task, base_commit=base_commit, command_timeout=loop.command_timeout,
        max_command_timeout=loop.command_timeout_max, observation_max_chars=loop.observation_max_chars,
        test_cmd=settings.sandbox.test_cmd, cache_dir=cache_dir,
    )
    return Agent(
        model, toolset(settings.tools.enabled), ctx, settings=loop, prompts=prompts,
        tool_format=settings.model.tool_format, text_format=getattr(model, "text_tool_format", "xml"),
        trajectory=trajectory, listener=listener, final_patch=current_patch, files=files,
    )
