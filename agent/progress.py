"""Live progress and the final summary on the terminal, for people watching a run."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.status import Status
from rich.table import Table

from agent.redaction import mask_held, scrub
from agent.terminal import escape as _escape, visible_patch

if TYPE_CHECKING:
    from agent.loop import RunResult
    from agent.patch_policy import PatchReview

KEY_ARGUMENT = ("command", "path", "pattern", "paths", "message")


def describe_call(name: str, arguments: Any) -> str:
    """One line: the tool and its most telling argument."""
    if not isinstance(arguments, dict):
        return name
    if name == "str_replace_editor":
        return f"{name} {arguments.get('command', '?')} {arguments.get('path', '')}".rstrip()
    for key in KEY_ARGUMENT:
        if key in arguments:
            value = arguments[key]
            text = value if isinstance(value, str) else json.dumps(value)
            return f"{name} {' '.join(text.split())[:100]}"
    return name


class Waiting:
    """The live line shown while a request is out: a first reply on a CPU server can take two minutes."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.since = time.monotonic()

    def __rich__(self) -> str:
        return f"[dim]step {self.step}: the model is thinking ({time.monotonic() - self.since:.0f}s)[/]"


class LiveProgress:
    """A loop listener printing one line per tool call: step, tool, argument, outcome, time, tokens.

    While the model is being asked, a live line says so with the seconds waited (on a
    terminal only; nothing is left behind in a log).
    """

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.started = time.monotonic()
        self.tokens = 0
        self.step = 0
        self._waiting: Status | None = None

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        """Show one event; a terminal that is gone (SIGHUP, a closed ssh) silences it, never the run."""
        if self.quiet:
            return
        try:
            self._show(kind, data)
        except OSError:
            self.quiet = True

    def _show(self, kind: str, data: dict[str, Any]) -> None:
        self._stop_waiting()
        if kind == "thinking":
            self._waiting = Status(Waiting(data.get("step", self.step + 1)), console=self.console,
                                   refresh_per_second=4)
            self._waiting.start()
        elif kind == "end":
            return
        elif kind == "response":
            self.step = data.get("step", self.step)
            usage = data.get("usage") or {}
            self.tokens += usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
        elif kind == "tool":
            mark = "[red]✗[/]" if data.get("is_error") else "[green]✓[/]"
            first = next((line for line in str(data.get("observation", "")).splitlines() if line.strip()), "")
            step = f"{data['attempt']}:{data.get('step', '?')}" if "attempt" in data else str(self.step)  # --attempts
            self.console.print(
                f"[dim]{self._clock()}[/] [bold]{step:>3}[/] {mark} {_escape(describe_call(data['name'], data.get('arguments')))}"
                f"  [dim]{_escape(first[:80])}[/]", soft_wrap=True, highlight=False)
        elif kind == "format_error":
            self.console.print(f"[dim]{self._clock()}[/] [bold]{self.step:>3}[/] [yellow]! {_escape(data['errors'][0][:100])}[/]",
                               highlight=False)
        elif kind == "repeated_action":
            self.console.print(f"[dim]{self._clock()}[/] [bold]{self.step:>3}[/] [yellow]! the same call and result "
                               f"{data['count']} times in a row; the model was told[/]", highlight=False)
        elif kind == "compaction":
            self.console.print(f"[dim]{self._clock()}[/]     [cyan]context compacted ({data['messages_before']} -> "
                               f"{data['messages_after']} messages)[/]")
        elif kind == "model_wait":
            attempt = f", attempt {data['attempt']}/{data['attempts']}" if data.get("attempt", 1) > 1 else ""
            self.console.print(f"[dim]{self._clock()}[/]     [cyan]waiting for the model server, "
                               f"{data['seconds']} s{attempt}[/]", highlight=False)
        elif kind == "model_retry":
            self.console.print(f"[dim]{self._clock()}[/]     [yellow]retrying after {_escape(data['reason'])}, attempt "
                               f"{data['attempt']}/{data['attempts']} in {data['wait']:g} s[/]", highlight=False)
        elif kind == "tool_format":
            why = data.get("reason") or "server has no native tool calling"
            self.console.print(f"[dim]{self._clock()}[/]     [cyan]{_escape(why)}; using {data['format']} text calls[/]")

    def _stop_waiting(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.stop()

    def _clock(self) -> str:
        seconds = time.monotonic() - self.started
        return f"{int(seconds // 60):02d}:{seconds % 60:04.1f} {self.tokens / 1000:6.1f}k"


def status_line(message: str) -> None:
    """Our own progress lines, dim on stderr: stdout carries only the outcome."""
    Console(stderr=True, highlight=False).print(f"[dim]{_escape(message)}[/]", soft_wrap=True)


def print_summary(console: Console, result: RunResult, extra: dict[str, str] | None = None) -> None:
    table = Table.grid(padding=(0, 2))
    colour = "green" if result.status == "submitted" else "yellow" if result.has_patch else "red"
    rows = {
        "status": f"[{colour}]{result.status}[/] {_escape(result.message)}",
        "steps": str(result.steps),
        "tokens": f"{result.prompt_tokens:,} prompt + {result.completion_tokens:,} completion",
        "time": f"{result.elapsed:.1f}s",
        "prefix reuse": f"{result.prefix_reuse:.1%}" if result.prefix_reuse is not None else "-",
    }
    if result.cost is not None:
        rows["cost"] = f"{result.cost:.4f}"
    if result.last_tests:
        tests = result.last_tests
        failed = len(tests.get("failed", [])) + len(tests.get("errors", []))
        rows["tests"] = (f"[{'green' if not failed else 'red'}]{tests.get('passed', 0)} passed, {failed} failed[/] "
                         f"({_escape(str(tests.get('command', '')))})")
    rows.update(extra or {})
    for key, value in rows.items():
        table.add_row(f"[bold]{key}[/]", scrub(value))  # `extra` is the caller's markup: scrubbed all the same
    console.print(table)


def print_diff(console: Console, patch: str, exact: bool = True) -> None:
    """The patch: on a terminal with every control character shown, never wrapped or cut; elsewhere as is.

    `exact=False` (a patch shown inside a display, as `agent traj show` does, which nobody pipes into
    `git apply`) shows control and format characters escaped wherever the output goes: a trajectory
    is untrusted, and its text must never drive a terminal the output is later shown on.

    A printed patch is one people copy and pipe into `git apply`: to a file or a pipe it is
    written as is, byte for byte as `--patch-out` writes it (a form feed or an escape in a
    context line stays one byte, or the patch no longer applies; no width, no tab expansion,
    no padding), the secrets the process holds masked (`mask_held`: URLs in it stay as written); on a terminal it is coloured, its control characters are
    escaped (`\\x1b`, so the terminal never obeys them) and each line stays one line however
    wide (the terminal folds it on screen only).
    """
    if not patch.strip():
        return
    if not console.is_terminal:
        text = mask_held(patch) if exact else visible_patch(patch)
        console.file.write(text + ("" if text.endswith("\n") else "\n"))
        console.file.flush()
        return
    text = visible_patch(patch)
    text += "" if text.endswith("\n") else "\n"
    from rich.syntax import Syntax  # pygments: a tenth of a second, paid only to show a diff

    console.print(Syntax(text, "diff", theme="ansi_dark").highlight(text), soft_wrap=True, end="")


def print_review(console: Console, review: PatchReview) -> None:
    """The patch's sensitive changes (agent/patch_policy.py), one line each, for the person about to use it."""
    for finding in review.findings:
        console.print(f"[bold yellow]sensitive:[/] {_escape(str(finding))}", soft_wrap=True, highlight=False)


def print_selection(console: Console, record: dict[str, Any]) -> None:
    """A `--attempts` run's selection record (agent/selection.py): each attempt, each candidate's checks, the choice."""
    from agent.selection import describe

    console.print(f"[bold]selection[/] {_escape(describe(record))}", soft_wrap=True)
    for attempt in record.get("attempts", []):
        console.print(f"attempt {attempt['attempt']} (seed {attempt['seed']}): {_escape(attempt['status'])}, "
                      f"{attempt['steps']} steps: {_escape(attempt['trajectory'])}", soft_wrap=True, highlight=False)
    candidates = Table("candidate", "attempts", "applies", "reproduced", "broken", "lines", "note",
                       title="candidates", title_justify="left")
    for candidate in record.get("candidates", []):
        mark = "[bold green]✓ [/]" if candidate["candidate"] == record.get("winner") else ""
        candidates.add_row(f"{mark}{candidate['candidate']}", ", ".join(map(str, candidate["attempts"])),
                           {True: "yes", False: "no", None: "-"}[candidate["applies"]],
                           f"{candidate['reproduced']}/{len(candidate['reproduction'])}",
                           _escape(", ".join(candidate["broken"])[:80] or "0"), str(candidate["changed_lines"]),
                           _escape(candidate.get("error") or ""))
    console.print(candidates)
