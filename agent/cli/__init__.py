"""The `agent` command: typer wiring only; each group lives in its own module."""

from __future__ import annotations

import sys

import typer

from agent import __version__
from agent.cli import ci, demo, doctor, eval as eval_cmd, eval_run, fix, map as map_cmd, model, pr, sandbox, traj
from agent.errors import AgentError, missing_extra
from sandbox.base import SandboxError

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


def _fail(message: str, code: int) -> None:
    from rich.console import Console

    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(code)


def main() -> None:
    """Run the CLI; turn known errors into one line and an exit code, never a traceback."""
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _fail("aborted", 130)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except AgentError as exc:
        _fail(str(exc), exc.exit_code)
    except SandboxError as exc:
        _fail(str(exc), 3)
    except ModuleNotFoundError as exc:  # an optional feature whose extra is not installed
        if (missing := missing_extra(exc)) is None:
            raise
        _fail(str(missing), missing.exit_code)
    except typer.TyperException as exc:  # bad flags: typer (0.29+, its own copy of click) says which, with usage
        exc.show()
        sys.exit(exc.exit_code)
