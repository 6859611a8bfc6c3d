"""The `agent` command: typer wiring only; each group lives in its own module."""

from __future__ import annotations

import os
import signal
import sys


def failure_json(status: str, message: str, code: int) -> str | None:
    """What `agent fix --json` prints when it ends before its run has an outcome; None for other commands.

    `status` is "interrupted", "usage_error" (exit 2) or "environment_error" (exit 3): a
    caller reading the JSON always gets an object, whatever stopped the command.
    """
    if sys.argv[1:2] == ["fix"] and "--json" in sys.argv:
        import json

        return json.dumps({"status": status, "message": message, "patch": "", "branch": None, "commit": None,
                           "applied": False, "trajectory": None, "run_id": None, "exit_code": code})
    return None


def _interrupted_while_starting(signum: int, frame: object) -> None:
    """SIGINT/SIGTERM/SIGHUP while the CLI is still importing: nothing exists yet that needs cleaning up.

    It exits at once rather than raising: an exception raised in the middle of an import can
    be swallowed by the import system's own callbacks.
    """
    printed = failure_json("interrupted", "interrupted before the run started", 128 + signum)
    for fd, text in ((1, printed), (2, "error: interrupted")):
        try:
            if text:
                os.write(fd, text.encode() + b"\n")
        except OSError:  # a terminal that is gone (SIGHUP), a closed pipe: the exit code still says it
            pass
    os._exit(128 + signum)


# Installed before the heavy imports below (about half a second), and only when this is the
# `agent` command itself; `main` then hands signals to `sandbox.cleanup`, which cleans up.
# The one place signals are set up at start-up: whatever else start-up does comes after.
if os.path.basename(sys.argv[0]) == "agent" or sys.argv[0].endswith(os.path.join("agent", "__main__.py")):
    for _signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(_signum, _interrupted_while_starting)

import typer  # noqa: E402

from agent import __version__  # noqa: E402
from agent.cli import (  # noqa: E402
    ci, demo, doctor, eval as eval_cmd, eval_run, fix, map as map_cmd, model, pr, sandbox, traj,
)
from agent.errors import AgentError, missing_extra  # noqa: E402
from sandbox.base import SandboxError  # noqa: E402
from sandbox.cleanup import Interrupted, install_handlers, unreported  # noqa: E402

app = typer.Typer(
    name="agent",
    help="An autonomous coding agent for self-hosted MoE models, with fast Docker sandboxes.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"moe-agent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """moe-agent: issue text in, a tested patch out."""


app.command("fix", help=fix.HELP)(fix.fix)
app.command("demo", help=demo.HELP)(demo.demo)
app.command("doctor", help=doctor.HELP)(doctor.doctor)
app.command("map", help=map_cmd.HELP)(map_cmd.map_command)
app.command("pr", help=pr.HELP)(pr.pr)
app.add_typer(ci.app, name="ci")
eval_cmd.app.command("run")(eval_run.run)
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(model.app, name="model")
app.add_typer(traj.app, name="traj")


def _fail(message: str, code: int, status: str | None = None) -> None:
    """One line on stderr and exit `code`; `fix --json` prints its object first."""
    printed = failure_json(status or {2: "usage_error", 3: "environment_error"}.get(code, "error"), message, code)
    if printed:
        try:
            print(printed, flush=True)
        except OSError:
            pass
    from rich.console import Console

    from agent.terminal import escape

    try:
        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    except OSError:  # stderr was a terminal that is gone (SIGHUP): the exit code still says it
        pass
    sys.exit(code)


def _interrupted(exc: KeyboardInterrupt) -> None:
    _fail("interrupted", 128 + getattr(exc, "signum", signal.SIGINT), status="interrupted")


def main() -> None:
    """Run the CLI; turn known errors into one line and an exit code, never a traceback."""
    install_handlers()  # from here on SIGINT, SIGTERM and SIGHUP raise Interrupted and every run cleans up
    try:
        code = app(standalone_mode=False)
        signum = unreported()
        if signum is not None and code in (130, 128 + signum):  # typer turns an escaped KeyboardInterrupt into 130
            _interrupted(Interrupted(signum))
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort as exc:  # click turns a KeyboardInterrupt inside a command into Abort
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _interrupted(exc.__cause__)
        _fail("aborted", 130)
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM as sandbox.cleanup.Interrupted
        _interrupted(exc)
    except AgentError as exc:
        _fail(str(exc), exc.exit_code)
    except SandboxError as exc:
        _fail(str(exc), getattr(exc, "exit_code", 3))
    except ModuleNotFoundError as exc:  # an optional feature whose extra is not installed
        if (missing := missing_extra(exc)) is None:
            raise
        _fail(str(missing), missing.exit_code)
    except typer.TyperException as exc:  # bad flags: typer (0.29+, its own copy of click) says which, with usage
        exc.show()
        sys.exit(exc.exit_code)
