"""`agent map` prints repository text (file names, definition lines): nothing in it may act on the terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Invisible format characters (Unicode Cf): issue 16 item 6, fourth tester.
FORMAT_CHARACTERS = "\ufeff\u00ad\u180e\u200b\u200d\u2060\u206a\ufff9\U0001d173"


def agent_map(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "map", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def test_definition_lines_and_file_names_show_format_characters_escaped(tmp_path: Path) -> None:
    cf = FORMAT_CHARACTERS
    repo = tmp_path / "repo"
    repo.mkdir()
    source = f'class Tool:\n    def run(self, x="{cf}"):  # {cf}\n        return x\n\n\ndef main(y="{cf}"):\n    pass\n'
    (repo / f"tool{cf[3]}.py").write_text(source)
    whole = agent_map(str(repo), "--cache-dir", str(tmp_path / "tags"))
    outline = agent_map(str(repo), "--outline", f"tool{cf[3]}.py")
    for done in (whole, outline):
        assert done.returncode == 0, done.stderr
        assert [hex(ord(char)) for char in done.stdout + done.stderr if char in cf] == []
    assert "tool\\u200b.py" in whole.stdout and 'def run(self, x="\\ufeff\\xad\\u180e\\u200b\\u200d' in whole.stdout
