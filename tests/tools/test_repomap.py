"""Tags, outlines, the ranked repo map, its disk cache, and `agent map`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import typer
from scipy import sparse
from typer.testing import CliRunner

from agent.cli.map import HELP, map_command
from agent.errors import UsageError
from tools import repomap, tags
from tools.repomap import HostDirectory, build_repo_map, mentioned_files, pagerank, rank_definitions
from tests.hostile import minified_bundle, write_corpus
from tools.tags import TagCache, extract_tags, format_outline, index_files, outline

ROOT = Path(__file__).resolve().parents[2]
MODELS = '''\
class Product:
    """A thing we sell."""

    def price_with_tax(self, rate):
        return round_money(self.price * (1 + rate))

    def describe(self):
        return "product"


class Inventory:
    def add_product(self, product):
        self.items.append(product)
'''
VIEWS = '''\
from shop.models import Inventory, Product


def show_product(request):
    return Product().price_with_tax(0.2)


def stock(request):
    inventory = Inventory()
    inventory.add_product(Product())
'''
REPORT = "from shop.models import Product\n\n\ndef summarize():\n    return Product().price_with_tax(0.1)\n"
MONEY = "def round_money(amount):\n    return round(amount, 2)\n"
UNUSED = "def lonely_helper():\n    return 1\n"


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def shop(root: Path) -> Path:
    return write_files(root, {"shop/models.py": MODELS, "shop/views.py": VIEWS, "shop/report.py": REPORT,
                              "shop/money.py": MONEY, "shop/unused.py": UNUSED, "README.md": "# shop\n"})


def age(root: Path) -> None:
    """Make every file look written long ago, so the cache may trust its size and mtime."""
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (1_600_000_000, 1_600_000_000))


# ---- outline and tags ----

def test_outline_lists_classes_and_functions_with_methods_under_their_class() -> None:
    symbols = outline("shop/models.py", MODELS.encode())
    assert [(s.name, s.kind, s.start_line, s.end_line, s.parent) for s in symbols] == [
        ("Product", "class", 1, 8, None),
        ("price_with_tax", "method", 4, 5, "Product"),
        ("describe", "method", 7, 8, "Product"),
        ("Inventory", "class", 11, 13, None),
        ("add_product", "method", 12, 13, "Inventory"),
    ]
    text = format_outline(symbols)
    assert text.splitlines()[1] == "  4-5      method price_with_tax"


OUTLINE_CASES = {
    "app.js": ((b"class A extends B {\n  m() { return helper(); }\n}\nfunction helper() { return new A(); }\n"
                b"const arrow = () => helper();\n"),
               {("A", "class", None), ("m", "method", "A"), ("helper", "function", None),
                ("arrow", "function", None)}),
    "app.ts": ((b"interface Shape { area(): number; }\ntype Id = string;\nenum Color { Red }\n"
                b"class Circle implements Shape {\n  area(): number { return 1; }\n}\n"),
               {("Shape", "interface", None), ("area", "method", "Shape"), ("Id", "type", None),
                ("Color", "enum", None), ("Circle", "class", None), ("area", "method", "Circle")}),
    "view.tsx": (b"export function View(): JSX.Element {\n  return <div />;\n}\n", {("View", "function", None)}),
    "main.go": ((b"package main\n\ntype Point struct { X int }\ntype Shape interface { Area() int }\n"
                 b"func (p *Point) Area() int { return p.X }\nfunc main() {}\n"),
                {("Point", "struct", None), ("Shape", "interface", None), ("Area", "method", None),
                 ("main", "function", None)}),
    "lib.rs": ((b"struct Point { x: i32 }\ntrait Shape { fn area(&self) -> i32; }\n"
                b"impl Shape for Point {\n    fn area(&self) -> i32 { self.x }\n}\nfn helper() {}\n"),
               {("Point", "struct", None), ("Shape", "trait", None), ("area", "method", "Shape"),
                ("Point", "impl", None), ("area", "method", "Point"), ("helper", "function", None)}),
    "Main.java": (b"class Main {\n  Main() {}\n  void run() {}\n  interface Job { void go(); }\n}\n",
                  {("Main", "class", None), ("Main", "method", "Main"), ("run", "method", "Main"),
                   ("Job", "interface", "Main"), ("go", "method", "Job")}),
    "util.c": (b"struct point { int x; };\ntypedef int number;\nstatic char *name(void) { return 0; }\n",
               {("point", "struct", None), ("number", "type", None), ("name", "function", None)}),
    "util.cpp": (b"namespace ns {\nclass Foo {\n  void bar() {}\n};\nint Foo::qux() { return 1; }\n}\n",
                 {("ns", "namespace", None), ("Foo", "class", "ns"), ("bar", "method", "Foo"),
                  ("qux", "method", "ns")}),
    "app.rb": (b"module M\n  class A < Base\n    def m\n    end\n  end\nend\n",
               {("M", "module", None), ("A", "class", "M"), ("m", "method", "A")}),
}


@pytest.mark.parametrize("path", OUTLINE_CASES)
def test_outline_in_every_language(path: str) -> None:
    source, expected = OUTLINE_CASES[path]
    assert {(s.name, s.kind, s.parent) for s in outline(path, source)} == expected


def test_outline_of_an_unsupported_or_broken_file() -> None:
    assert outline("notes.txt", b"class A:\n") == []
    symbols = outline("half.py", b"def ok():\n    pass\n\ndef broken(:\n")
    assert ("ok", "function") in {(s.name, s.kind) for s in symbols}


def test_tags_count_references_but_not_the_names_being_defined() -> None:
    found = extract_tags("python", VIEWS.encode())
    assert found.references == {"Product": 2, "price_with_tax": 1, "Inventory": 1, "add_product": 1}
    go = extract_tags("go", b"package m\n\ntype Point struct{}\n\nfunc f(p Point) Point { return p }\n")
    assert go.references == {"Point": 2}
    assert [d.text for d in extract_tags("python", MODELS.encode()).definitions][:2] == [
        "class Product:", "    def price_with_tax(self, rate):"]


# ---- mentions and ranking ----

def test_mentioned_files_by_path_tail_unique_basename_but_not_plain_words() -> None:
    paths = ["django/db/models/query.py", "django/db/utils.py", "django/core/utils.py", "bin/run"]
    text = ('Traceback: File "/testbed/django/db/models/query.py", line 3. Also utils.py and run it; '
            "see db/utils.py.")
    assert mentioned_files(text, paths) == {"django/db/models/query.py", "django/db/utils.py"}
    assert mentioned_files("query.py fails", paths) == {"django/db/models/query.py"}


def test_pagerank_matches_networkx() -> None:
    rng = np.random.default_rng(7)
    dense = sparse.random(30, 30, density=0.1, random_state=7).toarray() * 10
    dense[5, :] = 0  # a dangling node
    weights = sparse.csr_matrix(dense)
    personalization = np.zeros(30)
    personalization[[3, 11]] = rng.random(2) + 0.5
    ranks = pagerank(weights, personalization)
    graph = nx.from_scipy_sparse_array(weights, create_using=nx.DiGraph)
    nodes = list(graph.nodes)
    weighted = {node: personalization[node] for node in nodes}
    expected = nx.pagerank(graph, weight="weight", personalization=weighted, dangling=weighted)
    assert np.allclose([ranks[node] for node in nodes], [expected[node] for node in nodes], atol=1e-5)


def names_of(root: Path) -> dict[str, tags.FileNames]:
    return index_files(HostDirectory(root).files()).names


def test_ranking_puts_used_definitions_and_the_files_they_live_in_first(tmp_path: Path) -> None:
    ranking = rank_definitions(names_of(shop(tmp_path)))
    order = ranking.definitions
    assert order[0] == ("shop/money.py", "round_money")  # used by the most used module
    assert order.index(("shop/models.py", "price_with_tax")) < order.index(("shop/models.py", "describe"))
    assert order.index(("shop/models.py", "add_product")) < order.index(("shop/views.py", "stock"))
    ranks = ranking.file_ranks
    assert min(ranks["shop/money.py"], ranks["shop/models.py"]) > max(ranks["shop/views.py"], ranks["shop/report.py"])


def test_a_mentioned_identifier_pulls_its_definition_up(tmp_path: Path) -> None:
    names = names_of(shop(tmp_path))
    plain = rank_definitions(names).definitions
    mentioned = rank_definitions(names, mentioned_idents={"lonely_helper"}).definitions
    entry = ("shop/unused.py", "lonely_helper")
    assert mentioned.index(entry) < plain.index(entry)
    assert mentioned[0] == entry


def test_chat_files_are_left_out_of_the_ranking(tmp_path: Path) -> None:
    ranking = rank_definitions(names_of(shop(tmp_path)), chat_files={"shop/models.py"})
    assert all(path != "shop/models.py" for path, _ in ranking.definitions)


# ---- the rendered map ----

def test_map_renders_files_with_definition_lines_and_elisions(tmp_path: Path) -> None:
    text = build_repo_map(HostDirectory(shop(tmp_path)).files(), max_tokens=1024, cache=None).text
    assert "shop/models.py:\n│class Product:\n⋮\n│    def price_with_tax(self, rate):\n⋮\n" in text
    assert "│class Inventory:\n│    def add_product(self, product):\n" in text
    assert "README.md" in text  # a file without definitions still gets named when room remains
    lines = text.splitlines()
    assert lines.index("shop/models.py:") < lines.index("shop/views.py:")  # files in path order


def test_map_fits_the_token_budget_and_grows_with_it(tmp_path: Path) -> None:
    files = HostDirectory(shop(tmp_path)).files()
    shown = []
    for budget in (25, 40, 80, 1024):
        repo_map = build_repo_map(files, max_tokens=budget)
        assert len(repo_map.text) / 4 <= budget
        shown.append(repo_map.shown_definitions)
    assert shown == sorted(shown) and shown[0] < shown[-1]
    assert shown[0] >= 1


def test_map_leaves_out_chat_files_and_follows_the_task(tmp_path: Path) -> None:
    files = HostDirectory(shop(tmp_path)).files()
    assert "shop/models.py" not in build_repo_map(files, chat_files={"shop/models.py"}).text
    small = build_repo_map(files, max_tokens=20).text
    assert "lonely_helper" not in small
    assert "lonely_helper" in build_repo_map(files, max_tokens=20, task="Why does lonely_helper return 1?").text


def test_map_of_a_mixed_language_repository(tmp_path: Path) -> None:
    write_files(tmp_path, {
        "web/api.ts": "export function fetchUser(id: number) { return id; }\n",
        "web/app.ts": "import { fetchUser } from './api';\nfetchUser(1);\nfetchUser(2);\n",
        "svc/store.go": "package svc\n\ntype Store struct{}\n\nfunc NewStore() *Store { return &Store{} }\n",
        "svc/main.go": "package svc\n\nfunc run() { s := NewStore(); _ = s }\n",
        "core/lib.rs": "pub struct Engine;\npub fn start_engine() -> Engine { Engine }\n",
        "core/main.rs": "fn main() { start_engine(); }\n",
    })
    text = build_repo_map(HostDirectory(tmp_path).files()).text
    for line in ("│export function fetchUser(id: number) { return id; }",
                 "│func NewStore() *Store { return &Store{} }",
                 "│pub fn start_engine() -> Engine { Engine }"):
        assert line in text


def test_sandbox_style_input_gives_the_same_map(tmp_path: Path) -> None:
    root = shop(tmp_path)
    host = build_repo_map(HostDirectory(root).files()).text
    contents = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    pairs = [(path, lambda data=data: data) for path, data in sorted(contents.items())]
    assert build_repo_map(pairs).text == host


def test_an_empty_or_unsupported_tree_maps_to_file_names_only(tmp_path: Path) -> None:
    assert build_repo_map([]).text == ""
    write_files(tmp_path, {"notes.txt": "hello\n", "data/table.csv": "a,b\n"})
    assert build_repo_map(HostDirectory(tmp_path).files()).text == "data/table.csv\nnotes.txt\n"


# ---- file discovery ----

def test_host_directory_honours_gitignore_in_a_git_repository(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.py": "x = 1\n", "build/gen.py": "y = 2\n", "new.py": "z = 3\n",
                           ".gitignore": "build/\n"})
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "app.py", ".gitignore"], check=True)
    assert HostDirectory(tmp_path).paths() == [".gitignore", "app.py", "new.py"]


def test_host_directory_walk_skips_hidden_dependency_and_virtualenv_dirs(tmp_path: Path) -> None:
    write_files(tmp_path, {"src/app.py": "", "node_modules/x/index.js": "", "src/__pycache__/app.py": "",
                           ".hidden/a.py": "", "env2/pyvenv.cfg": "", "env2/lib/site.py": "", ".env.py": "",
                           "venv/lib/a.py": ""})
    assert HostDirectory(tmp_path).paths() == ["src/app.py"]


# ---- the disk cache ----

@pytest.fixture
def parse_counter(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every parse, recorded by language: proves what a warm map does not do."""
    parsed: list[str] = []
    real = tags.extract_tags

    def counting(language: str, source: bytes) -> tags.FileTags:
        parsed.append(language)
        return real(language, source)

    monkeypatch.setattr(tags, "extract_tags", counting)
    return parsed


def test_a_second_map_of_an_unchanged_repository_parses_nothing(tmp_path: Path, parse_counter: list[str]) -> None:
    root = shop(tmp_path / "repo")
    cache = TagCache(tmp_path / "cache")
    first = build_repo_map(HostDirectory(root).files(), cache=cache)
    assert first.parsed == len(parse_counter) == 5
    second = build_repo_map(HostDirectory(root).files(), cache=TagCache(tmp_path / "cache"))
    assert second.parsed == 0 and len(parse_counter) == 5
    assert second.text == first.text


def test_only_changed_files_are_parsed_again(tmp_path: Path, parse_counter: list[str]) -> None:
    root = shop(tmp_path / "repo")
    cache = TagCache(tmp_path / "cache")
    build_repo_map(HostDirectory(root).files(), cache=cache)
    (root / "shop/unused.py").write_text(UNUSED + "\n\ndef another_helper():\n    return 2\n")
    again = build_repo_map(HostDirectory(root).files(), cache=cache)
    assert again.parsed == 1 and len(parse_counter) == 6
    assert "another_helper" in build_repo_map(HostDirectory(root).files(), cache=cache).text


def test_the_cache_is_keyed_by_content_so_a_copy_elsewhere_is_not_parsed(tmp_path: Path,
                                                                         parse_counter: list[str]) -> None:
    cache = TagCache(tmp_path / "cache")
    build_repo_map(HostDirectory(shop(tmp_path / "one")).files(), cache=cache)
    copy = build_repo_map([(f"x/{name}", lambda n=name: (tmp_path / "one" / n).read_bytes())
                           for name in ("shop/models.py", "shop/views.py")], cache=cache)
    assert copy.parsed == 0 and len(parse_counter) == 5


def test_a_warm_map_of_settled_files_does_not_even_read_them(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = shop(tmp_path / "repo")
    age(root)
    cache = TagCache(tmp_path / "cache")
    build_repo_map(HostDirectory(root).files(), cache=cache)
    reads: list[str] = []
    real_read = repomap._read_file
    monkeypatch.setattr(repomap, "_read_file", lambda location: reads.append(location) or real_read(location))
    warm = build_repo_map(HostDirectory(root).files(), cache=cache)
    assert reads == [] and warm.parsed == 0
    (root / "shop/views.py").write_text(VIEWS + "\n\ndef extra_view():\n    pass\n")
    changed = build_repo_map(HostDirectory(root).files(), cache=cache)
    assert reads == [str(root.resolve() / "shop/views.py")] and changed.parsed == 1


def test_a_broken_cache_location_still_maps(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    repo_map = build_repo_map(HostDirectory(shop(tmp_path / "repo")).files(), cache=TagCache(blocker))
    assert repo_map.parsed == 5 and "Product" in repo_map.text


def test_a_corrupt_cache_file_is_treated_as_empty(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    TagCache(cache_dir).path.write_bytes(b"this is not sqlite" * 100)
    repo_map = build_repo_map(HostDirectory(shop(tmp_path / "repo")).files(), cache=TagCache(cache_dir))
    assert repo_map.parsed == 5 and "Product" in repo_map.text


def test_huge_and_unreadable_files_are_skipped(tmp_path: Path) -> None:
    root = shop(tmp_path)
    (root / "generated.py").write_text("def generated():\n    pass\n" + "#" * 1_100_000)

    def unreadable() -> bytes:
        raise OSError("gone")

    files = HostDirectory(root).files() + [("vanished.py", unreadable)]
    index = index_files(files)
    assert "generated.py" not in index.names and "vanished.py" not in index.names
    assert "shop/models.py" in index.names


def test_many_files_are_parsed_in_worker_processes_with_the_same_result(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sources = {f"pkg/mod{i}.py": f"def function_{i}():\n    return function_{(i + 1) % 12}()\n" for i in range(12)}
    files = [(path, lambda text=text: text.encode()) for path, text in sources.items()]
    serial = index_files(files).names
    pools: list[object] = []

    class RecordingPool(tags.ProcessPoolExecutor):
        def __init__(self, *args: object, **kwargs: object) -> None:
            pools.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tags, "ProcessPoolExecutor", RecordingPool)
    monkeypatch.setattr(tags, "PARALLEL_MIN_FILES", 4)
    monkeypatch.setattr(tags.os, "sched_getaffinity", lambda pid: {0, 1})  # two workers even on one core
    monkeypatch.setattr(tags.threading, "active_count", lambda: 1)  # earlier tests may leave server threads
    parallel = index_files(files)
    assert pools and parallel.parsed == 12
    assert parallel.names == serial


# ---- agent map ----

def run_cli(*args: str) -> tuple[int, str, BaseException | None]:
    app = typer.Typer()
    app.command(help=HELP)(map_command)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.exception


def test_agent_map_prints_the_map_and_outlines(tmp_path: Path) -> None:
    root = shop(tmp_path / "repo")
    code, out, _ = run_cli(str(root), "--tokens", "200", "--mention", "price_with_tax",
                           "--cache-dir", str(tmp_path / "cache"))
    assert code == 0 and "│    def price_with_tax(self, rate):" in out
    code, out, _ = run_cli(str(root), "--outline", "shop/models.py")
    assert code == 0 and out.splitlines()[0].split() == ["1-8", "class", "Product"]


@pytest.mark.parametrize("args, message", [
    (["/does/not/exist"], "is not a directory"),
    ([".", "--tokens", "0"], "--tokens must be at least 1"),
    ([".", "--outline", "missing.py"], "is not a file"),
    ([".", "--outline", "README.md"], "no grammar for README.md"),
])
def test_agent_map_rejects_bad_input_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  args: list[str], message: str) -> None:
    monkeypatch.chdir(shop(tmp_path))
    _, _, error = run_cli(*args)
    assert isinstance(error, UsageError) and message in str(error)


def test_agent_map_of_a_directory_without_code_is_a_usage_error(tmp_path: Path) -> None:
    write_files(tmp_path, {"notes.txt": "x"})
    (tmp_path / "empty").mkdir()
    _, _, error = run_cli(str(tmp_path / "empty"), "--cache-dir", str(tmp_path / "cache"))
    assert isinstance(error, UsageError) and "nothing to map" in str(error)


# ---- hostile input: minified code, huge lines, planted caches ----

def test_definitions_on_a_minified_line_keep_a_window_not_the_line_so_tags_grow_linearly() -> None:
    sizes = {}
    for size in (40_000, 80_000):
        source = minified_bundle(size)
        found = extract_tags("javascript", source)
        assert len(found.definitions) > size // 40
        assert all(len(d.text) <= tags.DEFINITION_TEXT_BYTES + 6 and d.name in d.text for d in found.definitions)
        sizes[size] = len(tags._json(found.definitions)) + len(tags._json(found.names()))
    # Twice the input, about twice the cache entry: linear, where a whole line per definition was quadratic.
    assert sizes[80_000] < 2.2 * sizes[40_000] and sizes[80_000] < 20 * 80_000


def test_minified_and_generated_files_are_recognised_and_mapped_by_name_only(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "repo")
    write_files(root, {"app.min.js": "function tiny(){return 1}\n", "lib.js": "function useful() {\n  return 2;\n}\n"})
    index = index_files(HostDirectory(root).files())
    assert "lib.js" in index.names and "calc.py" in index.names
    assert not {"dist/bundle.js", "data/huge.js", "app.min.js"} & set(index.names)
    repo_map = build_repo_map(HostDirectory(root).files(), max_tokens=4096, cache=TagCache(tmp_path / "cache"))
    assert "dist/bundle.js" in repo_map.text.splitlines() and "function h1" not in repo_map.text
    *lines, note = repo_map.text.splitlines()  # latin-1 files: the map ends with the one note naming them
    assert max(map(len, lines)) <= 100 and note.startswith("[Note: escapes.py, prices.py are not valid UTF-8")
    assert "│def caf\\xe9_x():" in lines  # the identifier whole, escaped
    assert outline("dist/bundle.js", (root / "dist/bundle.js").read_bytes()) is None
    assert outline("lib.js", (root / "lib.js").read_bytes())[0].name == "useful"


def test_the_outline_command_says_a_minified_file_has_none(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "repo")
    code, out, _ = run_cli(str(root), "--outline", "data/huge.js")
    assert code == 0 and "looks minified or generated (5000011 bytes on 2 lines)" in out


PLANTED_NAMES = '[["PlantedName"], {}]'
PLANTED_DEFINITIONS = '[["PlantedName", "class", 1, 1, 1, 0, "PWNED"]]'  # parent 0 of itself: a bad row


def plant_cache(directory: Path, rows: list[tuple[bytes, object, object]], header: str | None) -> None:
    import sqlite3

    directory.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(TagCache(directory).path)
    if header is not None:
        db.execute("CREATE TABLE header (text TEXT NOT NULL)")
        db.execute("INSERT INTO header VALUES (?)", (header,))
    db.execute("CREATE TABLE tags (key BLOB PRIMARY KEY, names BLOB NOT NULL, definitions BLOB NOT NULL)")
    db.executemany("INSERT INTO tags VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()


@pytest.mark.parametrize("header, names, definitions", [
    (None, PLANTED_NAMES, '[["PlantedName", "class", 1, 1, 1, -1, "PWNED"]]'),  # no header: the file is not used
    ("some other cache", PLANTED_NAMES, '[["PlantedName", "class", 1, 1, 1, -1, "PWNED"]]'),
    (tags.CACHE_HEADER, '{"not": "a list"}', PLANTED_DEFINITIONS),  # right header, rows of the wrong shape
    (tags.CACHE_HEADER, '[["Ok"], {"n": "many"}]', '[[1, 2, 3]]'),
    (tags.CACHE_HEADER, b"\xe3\x00\x00\x00marshal code object bytes", b"\x00" * 64),  # the old marshal format
])
def test_a_planted_tag_cache_is_not_trusted(tmp_path: Path, header: str | None, names: object,
                                            definitions: object) -> None:
    root = shop(tmp_path / "repo")
    clean = build_repo_map(HostDirectory(root).files(), max_tokens=4096).text
    keys = [tags.content_key("python", path.read_bytes()) for path in root.rglob("*.py")]
    plant_cache(tmp_path / "cache", [(key, names, definitions) for key in keys], header)
    planted = build_repo_map(HostDirectory(root).files(), max_tokens=4096, cache=TagCache(tmp_path / "cache"))
    assert planted.text == clean and "PWNED" not in planted.text and "PlantedName" not in planted.text
    assert planted.parsed == 5  # every planted row was a miss


def test_agent_map_shows_a_file_name_that_is_not_utf8_visibly(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "repo")
    done = subprocess.run([sys.executable, "-m", "agent", "map", str(root), "--tokens", "4096",
                           "--cache-dir", str(tmp_path / "cache")], capture_output=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert b"caf\\xe9.py:" in done.stdout.splitlines() and b"Traceback" not in done.stderr


def test_one_long_line_among_blank_lines_is_generated_and_gets_no_outline() -> None:
    # issue 14: 30,000 one-line C definitions on one ~985 KB line, then 1000 blank lines (short mean length)
    blob = b"".join(b"int f%d(void){return %d;}" % (i, i) for i in range(30_000)) + b"\n" * 1000
    assert outline("gen.c", blob) is None
    assert outline("ok.c", b"int a(void){return 1;}\n" * 300) is not None


def test_definitions_on_one_line_are_siblings_and_the_outline_is_capped() -> None:
    source = b"".join(b"int f%d(void){return %d;}" % (i, i) for i in range(2000)) + b"\n" * 100  # ~50 KB line, short mean
    symbols = outline("one.c", source)
    assert len(symbols) == 2000 and {s.depth for s in symbols} == {0} and {s.parent for s in symbols} == {None}
    text = format_outline(symbols)
    assert max(len(line) for line in text.splitlines()) < 40  # no indentation that grows per definition
    capped = format_outline(symbols, max_chars=1000)
    assert len(capped) < 1100 and capped.endswith("more symbols not shown (outline cut at 1000 characters)")
    nested = outline("shop/models.py", MODELS.encode())
    assert [s.depth for s in nested] == [0, 1, 1, 0, 1]


def test_agent_map_and_outline_never_send_a_repositorys_escape_sequences_to_the_terminal(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "clip.py").write_bytes(b'def f(x="\x1b]52;c;cHduZWQ=\x07"):\n    return x\n')
    (root / "b\x1b[2J.py").write_bytes(b"def g():\n    return 1\n")
    for extra in ([], ["--outline", "clip.py"]):
        done = subprocess.run([sys.executable, "-m", "agent", "map", str(root), "--cache-dir", str(tmp_path / "cache"),
                               *extra], capture_output=True, cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr
        assert b"\x1b" not in done.stdout and b"\x07" not in done.stdout, done.stdout
    assert b"\\x1b]52" in subprocess.run([sys.executable, "-m", "agent", "map", str(root)], capture_output=True,
                                         cwd=ROOT, check=False, env={**os.environ, "AGENT_CACHE_DIR": str(tmp_path)}).stdout
