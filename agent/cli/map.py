"""`agent map [PATH]`: the repo map the model gets, or one file's outline, on the terminal."""

from __future__ import annotations

from pathlib import Path

import typer

from agent.errors import UsageError

HELP = ("Print the repo map of PATH: its most important definitions within a token budget, "
        "ranked toward what --mention names; or, with --outline FILE, that file's classes and functions.")


def map_command(
    path: Path = typer.Argument(Path("."), help="Directory to map (a git work tree honours .gitignore)."),
    tokens: int = typer.Option(1024, "--tokens", "-t", help="Token budget for the map (about 4 characters a token)."),
    mention: str = typer.Option("", "--mention", "-m", help="Task text: files and identifiers it names rank higher."),
    outline_file: Path | None = typer.Option(None, "--outline", help="Print this file's outline instead of the map."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Where parsed tags are kept "
                                          "(default $XDG_CACHE_HOME/moe-agent/tags, ~/.cache/moe-agent/tags)."),
) -> None:
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory")
    from agent.terminal import visible as shown

    if outline_file is not None:
        typer.echo(shown(_outline_text(path, outline_file)))  # signatures are the repository's text
        return
    if tokens < 1:
        raise UsageError(f"--tokens must be at least 1, got {tokens}")

    from tools.encoding import visible
    from tools.repomap import HostDirectory, build_repo_map
    from tools.tags import TagCache

    repo_map = build_repo_map(HostDirectory(path).files(), task=mention, max_tokens=tokens,
                              cache=TagCache(cache_dir))
    if not repo_map.text:
        raise UsageError(f"nothing to map in {path}: no source files in a supported language")
    # A file name that is not UTF-8 is shown as \xNN; control characters in names and source lines as \x1b.
    typer.echo(shown(visible(repo_map.text)), nl=False)
    typer.echo(f"({repo_map.files} files, {repo_map.parsed} parsed, {repo_map.shown_definitions} definitions shown)",
               err=True)


def _outline_text(root: Path, file: Path) -> str:
    from tools.code_map import generated_note
    from tools.languages import language_name_for, supported_languages
    from tools.tags import format_outline, outline

    target = file if file.is_file() or file.is_absolute() else root / file
    if not target.is_file():
        raise UsageError(f"--outline: {file} is not a file")
    if language_name_for(target.name) not in supported_languages():
        raise UsageError(f"--outline: no grammar for {file.name} (supported: {', '.join(supported_languages())})")
    source = target.read_bytes()
    symbols = outline(target.name, source)
    if symbols is None:
        return generated_note(str(file), source)
    return format_outline(symbols) if symbols else f"{file}: no classes or functions"
