"""The `agent` command: typer wiring only; each group lives in its own module."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading


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
from agent.errors import AgentError, missing_extra  # noqa: E402
from sandbox.base import SandboxError  # noqa: E402
from sandbox.cleanup import Interrupted, install_handlers, unreported  # noqa: E402

# Each command's module, imported only when that command runs (or for the full help):
# `agent fix` never imports the eval, CI or trajectory commands. name -> (module, attribute)
# where the attribute is a function (with a HELP beside it) or a Typer group.
COMMANDS = {
    "fix": ("fix", "fix"), "demo": ("demo", "demo"), "doctor": ("doctor", "doctor"), "map": ("map", "map_command"),
    "pr": ("pr", "pr"), "ci": ("ci", "app"), "eval": ("eval", "app"), "sandbox": ("sandbox", "app"),
    "model": ("model", "app"), "traj": ("traj", "app"),
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"moe-agent {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """moe-agent: issue text in, a tested patch out."""


def build_app(names: list[str] | None = None) -> typer.Typer:
    """The `agent` app with the commands NAMES (None: all, in `COMMANDS` order)."""
    import importlib

    app = typer.Typer(
        name="agent",
        help="An autonomous coding agent for self-hosted MoE models, with fast Docker sandboxes.",
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for name in COMMANDS if names is None else names:
        module_name, attribute = COMMANDS[name]
        module = importlib.import_module(f"agent.cli.{module_name}")
        target = getattr(module, attribute)
        if isinstance(target, typer.Typer):
            if name == "eval" and not any(c.name == "run" for c in target.registered_commands):
                from agent.cli import eval_run

                target.command("run")(eval_run.run)
            app.add_typer(target, name=name)
        else:
            app.command(name, help=module.HELP)(target)
    return app


def _invoked(argv: list[str]) -> list[str] | None:
    """The commands ARGV needs: the one it names (`agent fix ...`), none for `agent --version`,
    None (all of them) for help and mistakes."""
    for arg in argv:
        if not arg.startswith("-"):
            return [arg] if arg in COMMANDS else None
        if arg in ("-V", "--version"):
            return []
    return None


def __getattr__(name: str) -> typer.Typer:
    """`agent.cli.app`: every command (the tests' CliRunner, shell completion)."""
    if name == "app":
        return build_app()
    raise AttributeError(name)


def _fail(message: str, code: int, status: str | None = None) -> None:
    """One line on stderr and exit `code`; `fix --json` prints its object first. Both are scrubbed of secrets."""
    from agent.redaction import scrub

    message = scrub(message)
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
        code = build_app(_invoked(sys.argv[1:]))(standalone_mode=False)
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


def run() -> None:
    """The `agent` command's entry point: `main`, then an exit without the interpreter's teardown.

    Tearing down every imported module costs 0.2-0.8 s of CPU once the result is out (most of
    it the openai SDK's thousands of classes), which a user waits for before the prompt comes
    back. Exit handlers still run (`atexit`, `weakref.finalize`) and output is flushed; when a
    thread that Python would wait for is still running, or `main` raised something else, the
    exit is the usual one.
    """
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if any(thread.is_alive() and not thread.daemon and thread is not threading.main_thread()
           for thread in threading.enumerate()):
        sys.exit(code)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code or 0)
