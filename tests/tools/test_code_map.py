"""The repo map and outline tools, reading files out of a real container."""

from __future__ import annotations

import pytest

from tools.base import ToolContext, call_tool
from tools.code_map import outline_tool, repo_map

pytestmark = pytest.mark.docker

FILES = {
    "shop/cart.py": b"from shop.prices import price_of\n\n\nclass Cart:\n    def total(self, items):\n"
                    b"        return sum(price_of(i) for i in items)\n",
    "shop/prices.py": b"def price_of(item):\n    return item.price\n",
    "web/app.js": b"function render(cart) {\n  return cart.total();\n}\n",
    "notes.txt": b"not code\n",
}


@pytest.fixture
def ctx(box, tmp_path) -> ToolContext:
    for path, data in FILES.items():
        box.write_file(path, data)
    box.run("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm init")
    return ToolContext(sandbox=box, task="Cart.total is wrong when price_of returns None", cache_dir=str(tmp_path))


def test_repo_map_ranks_the_task_files(ctx) -> None:
    obs = call_tool(repo_map, {}, ctx)
    assert not obs.is_error, obs.text
    assert "3 source files" in obs.text
    assert "shop/cart.py" in obs.text and "class Cart" in obs.text and "price_of" in obs.text
    assert obs.data["parsed"] == 3
    again = call_tool(repo_map, {"focus": "render"}, ctx)
    assert again.data["parsed"] == 0  # the cache, keyed by content, answers everything


def test_repo_map_without_git_and_with_bad_arguments(box, tmp_path) -> None:
    box.write_file("lib.py", b"def helper():\n    pass\n")
    ctx = ToolContext(sandbox=box, cache_dir=str(tmp_path))
    assert "lib.py" in call_tool(repo_map, {}, ctx).text
    bad = call_tool(repo_map, {"max_tokens": "lots"}, ctx)
    assert bad.is_error and "max_tokens" in bad.text


def test_outline_lists_symbols_with_lines(ctx) -> None:
    obs = call_tool(outline_tool, {"path": "shop/cart.py"}, ctx)
    assert not obs.is_error
    assert "Cart" in obs.text and "total" in obs.text and "4" in obs.text


def test_outline_refuses_what_it_cannot_do(ctx) -> None:
    assert "no outline for this file type" in call_tool(outline_tool, {"path": "notes.txt"}, ctx).text
    assert "outside the repository" in call_tool(outline_tool, {"path": "../etc/passwd.py"}, ctx).text
    assert call_tool(outline_tool, {"path": "missing.py"}, ctx).is_error
    assert call_tool(outline_tool, {}, ctx).is_error
