"""The repo map: the definitions that matter most for a task, within a token budget.

Files are nodes of a graph; a file that uses an identifier points at every file defining
it. PageRank, personalised toward the files and names the task mentions (and the files
already in the chat), says which files matter; each file's rank then flows along its edges
to the (file, identifier) definitions it uses. Weights follow Aider's repo map, whose
behaviour is well tested on real models. The graph is a sparse matrix rather than a
networkx graph: Django's 200k edges cost networkx ~1.5 s per map, the matrix ~30 ms, and
the power iteration is the one `networkx.pagerank` runs (the tests check they agree).
"""

from __future__ import annotations

import functools
import os
import re
import stat
import subprocess
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path, PurePosixPath

import numpy as np
from scipy import sparse

from tools.encoding import not_utf8_note, shown_name
from tools.languages import language_name_for
from tools.tags import CONTAINER_KINDS, Definition, FileNames, SourceFile, Stamp, TagCache, index_files

CHARS_PER_TOKEN = 4
_LETTER = re.compile(r"[^\W\d_]")
MAX_LINE_CHARS = 100
SKIPPED_DIRS = frozenset({".git", "node_modules", "__pycache__", "venv", ".venv", ".tox", ".nox",
                          "site-packages", ".mypy_cache", ".pytest_cache"})


class HostDirectory:
    """The files of a directory on the host.

    In a git work tree, git's own list (tracked plus untracked-but-not-ignored) so that
    `.gitignore` holds; elsewhere a walk that skips hidden directories, virtualenvs and
    dependency folders. Files of supported languages carry a stamp (size, mtime) so an
    unchanged file need not be read again.
    """

    def __init__(self, root: Path | str, paths: Sequence[str] | None = None) -> None:
        self.root = str(Path(root).resolve())
        self._paths = list(paths) if paths is not None else None

    def paths(self) -> list[str]:
        if self._paths is None:
            self._paths = self._git_paths()
            if self._paths is None:
                self._paths = self._walk_paths()
        return self._paths

    def files(self) -> list[SourceFile]:
        files = []
        for path in self.paths():
            location = f"{self.root}/{path}"
            stamp = None
            if language_name_for(path) is not None:
                try:
                    info = os.stat(location)
                except OSError:
                    continue  # listed by git but deleted from the work tree
                if not stat.S_ISREG(info.st_mode):
                    continue
                stamp = Stamp(location, info.st_size, info.st_mtime_ns)
            files.append(SourceFile(path, functools.partial(_read_file, location), stamp))
        return files

    def _git_paths(self) -> list[str] | None:
        try:
            listed = subprocess.run(
                ["git", "-C", self.root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if listed.returncode != 0:
            return None
        return sorted({p for p in listed.stdout.decode("utf-8", "surrogateescape").split("\0") if p})

    def _walk_paths(self) -> list[str]:
        found = []
        for directory, subdirs, names in os.walk(self.root):
            subdirs[:] = sorted(d for d in subdirs if not _skipped_dir(os.path.join(directory, d), d))
            relative = os.path.relpath(directory, self.root)
            for name in names:
                if not name.startswith("."):
                    found.append(name if relative == "." else os.path.join(relative, name).replace(os.sep, "/"))
        return sorted(found)


def _skipped_dir(location: str, name: str) -> bool:
    return name.startswith(".") or name in SKIPPED_DIRS or os.path.exists(os.path.join(location, "pyvenv.cfg"))


def _read_file(location: str) -> bytes:
    with open(location, "rb", buffering=0) as file:
        return file.read()


# ---- what the task mentions ----

def mentioned_identifiers(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))


def mentioned_files(text: str, paths: Iterable[str]) -> set[str]:
    """Paths the text names in full, by a unique basename, or as the tail of a longer path
    (tracebacks print absolute paths such as /testbed/django/db/models/query.py)."""
    words = {word.replace("\\", "/").rstrip(".") for word in re.findall(r"[\w./\\-]+", text)}
    by_basename: dict[str, list[str]] = {}
    for path in paths:
        by_basename.setdefault(PurePosixPath(path).name, []).append(path)
    found = set()
    for word in words:
        base = PurePosixPath(word).name
        for path in by_basename.get(base, ()):
            if word == path or word.endswith("/" + path) or ("/" in word and path.endswith("/" + word.lstrip("./"))):
                found.add(path)
            elif word == base and len(by_basename[base]) == 1 and any(c in base for c in "._-"):
                found.add(path)  # "run" or "make" could be plain words; "query.py" is a file
    return found


# ---- ranking ----

@dataclass(frozen=True)
class Ranking:
    """Definitions best first, as (path, identifier), and every file's PageRank."""

    definitions: list[tuple[str, str]]
    file_ranks: dict[str, float]


@dataclass(frozen=True)
class NameUse:
    """Who defines and who uses each name: one array entry per (file, name) definition, and
    a file x name matrix of use weights (square root of the count, x50 for chat files)."""

    paths: list[str]
    names: list[str]
    def_file: np.ndarray
    def_name: np.ndarray
    uses: sparse.csr_matrix

    @property
    def definers(self) -> np.ndarray:
        return np.bincount(self.def_name, minlength=len(self.names))

    @property
    def used(self) -> np.ndarray:
        return np.asarray((self.uses != 0).sum(axis=0)).ravel() > 0


def name_use(files: dict[str, FileNames], chat_files: Collection[str] = ()) -> NameUse:
    """Flatten every file's names into arrays, with C-level maps: this is most of a warm map."""
    paths = sorted(files)
    defined = [files[path].defined for path in paths]
    ids = {name: i for i, name in enumerate(dict.fromkeys(chain.from_iterable(defined)))}
    n_files, n_names = len(paths), len(ids)
    def_file = np.repeat(np.arange(n_files), [len(names) for names in defined])
    def_name = np.fromiter(map(ids.__getitem__, chain.from_iterable(defined)), np.int64, len(def_file))
    # A name defined twice in one file still has one definer.
    def_file, def_name = sparse.csr_matrix((np.ones(len(def_file)), (def_file, def_name)),
                                           shape=(n_files, n_names)).nonzero()

    chat = np.isin(paths, list(chat_files))
    used = [files[path].references for path in paths]
    use_file = np.repeat(np.arange(n_files), [len(counts) for counts in used])
    use_name = np.fromiter(map(ids.get, chain.from_iterable(used), repeat(-1)), np.int64, len(use_file))
    use_count = np.fromiter(chain.from_iterable(counts.values() for counts in used), np.float64, len(use_file))
    known = use_name >= 0
    use_file, use_name = use_file[known], use_name[known]
    use_weight = np.sqrt(use_count[known]) * np.where(chat[use_file], 50.0, 1.0)
    if not len(use_file):  # nothing uses anything: let every definer use its own names (as Aider)
        use_file, use_name, use_weight = def_file, def_name, np.ones(len(def_file))
    uses = sparse.csr_matrix((use_weight, (use_file, use_name)), shape=(n_files, n_names))
    return NameUse(paths, list(ids), def_file, def_name, uses)


def rank_definitions(files: dict[str, FileNames], *, mentioned_idents: Collection[str] = (),
                     mentioned_paths: Collection[str] = (), chat_files: Collection[str] = (),
                     all_paths: Collection[str] | None = None, limit: int | None = None) -> Ranking:
    """Aider's weighting on a user -> definer file graph, PageRank, then rank per definition.

    `limit` caps how many ranked definitions are returned (a map shows at most a few hundred).
    """
    graph = name_use(files, chat_files)
    paths, names = graph.paths, graph.names
    if not names:
        return Ranking([], dict.fromkeys(paths, 0.0))
    mentioned = set(mentioned_idents)
    definers, used = graph.definers, graph.used
    multiplier = np.zeros(len(names))
    for name in np.flatnonzero(used).tolist():
        multiplier[name] = _name_weight(names[name], mentioned, int(definers[name]))
    defines = sparse.csr_matrix((np.ones(len(graph.def_file)), (graph.def_file, graph.def_name)),
                                shape=(len(paths), len(names)))
    weights = (graph.uses @ sparse.diags(multiplier) @ defines.T).tocsr()

    chat = np.isin(paths, list(chat_files))
    unit = 100 / max(len(all_paths) if all_paths is not None else len(paths), 1)
    personalization = _personalization(paths, mentioned, set(mentioned_paths), chat, unit)
    # Beyond Aider: a file defining a name the task mentions is a place to start from too,
    # unless the name is so common (defined in many files) that it says nothing.
    named = [i for i, name in enumerate(names) if name in mentioned and definers[i] <= 5]
    personalization[np.unique(graph.def_file[np.isin(graph.def_name, named)])] += unit
    ranks = pagerank(weights, personalization)

    # Each file's rank flows out along its edges, split by weight: the share a name gets is
    # the same for every file defining it. Definitions nobody uses get a little weight on a
    # self-edge. (Aider puts those self-edges into the PageRank graph too, which makes a
    # module of only unused names, such as a test module, a trap that keeps its rank; here
    # they only share out the file's own rank.)
    unused = ~used[graph.def_name]
    self_weight = np.bincount(graph.def_file[unused], minlength=len(paths)) * 0.1
    out_weight = np.asarray(weights.sum(axis=1)).ravel() + self_weight
    share = np.divide(ranks, out_weight, out=np.zeros_like(ranks), where=out_weight > 0)
    per_name = (graph.uses.T @ share) * multiplier
    definition_rank = np.where(unused, share[graph.def_file] * 0.1, per_name[graph.def_name])
    keep = ~chat[graph.def_file]
    def_file, def_name = graph.def_file[keep], graph.def_name[keep]
    order = np.lexsort((def_name, def_file, -definition_rank[keep]))[:limit]
    ranked = [(paths[f], names[n])
              for f, n in zip(def_file[order].tolist(), def_name[order].tolist(), strict=True)]
    return Ranking(ranked, dict(zip(paths, ranks.tolist(), strict=True)))


def _name_weight(name: str, mentioned: set[str], definers: int) -> float:
    weight = 1.0
    if name in mentioned:
        weight *= 10
    worded = ("_" in name or "-" in name) and _LETTER.search(name) is not None
    camel = name.lower() != name and name.upper() != name
    if (worded or camel) and len(name) >= 8:
        weight *= 10  # long descriptive names are specific; `get` is everywhere
    if name.startswith("_"):
        weight *= 0.1
    if definers > 5:
        weight *= 0.1
    return weight


def _personalization(paths: list[str], mentioned: set[str], mentioned_paths: set[str], chat: np.ndarray,
                     unit: float) -> np.ndarray:
    """Aider's: a unit for chat or mentioned files, another when a path part is a mentioned name."""
    values = np.where(chat, unit, 0.0)
    if not (mentioned or mentioned_paths):
        return values
    for i, path in enumerate(paths):
        if path in mentioned_paths:
            values[i] = unit
        parts = path.split("/")
        if not mentioned.isdisjoint({*parts, parts[-1].rsplit(".", 1)[0]}):
            values[i] += unit
    return values


def pagerank(weights: sparse.csr_matrix, personalization: np.ndarray, alpha: float = 0.85,
             max_iterations: int = 100, tolerance: float = 1.0e-6) -> np.ndarray:
    """The power iteration `networkx.pagerank` runs, over a weighted adjacency matrix.

    Dangling nodes (no out-edges) jump as the personalization says, as in Aider's call.
    """
    n = weights.shape[0]
    out_weight = np.asarray(weights.sum(axis=1)).ravel()
    transition = sparse.diags(np.divide(1.0, out_weight, out=np.zeros(n), where=out_weight > 0)) @ weights
    total = personalization.sum()
    jump = personalization / total if total > 0 else np.full(n, 1.0 / n)
    dangling = out_weight == 0
    x = np.full(n, 1.0 / n)
    for _ in range(max_iterations):
        previous = x
        x = alpha * (x @ transition + x[dangling].sum() * jump) + (1 - alpha) * jump
        if np.abs(x - previous).sum() < n * tolerance:
            break
    return x


# ---- rendering ----

@dataclass(frozen=True)
class RepoMap:
    """A rendered map and what building it cost."""

    text: str
    files: int
    parsed: int
    shown_definitions: int


def build_repo_map(files: Iterable[SourceFile | tuple[str, Callable[[], bytes]]], *, task: str = "",
                   chat_files: Collection[str] = (), max_tokens: int = 1024,
                   cache: TagCache | None = None) -> RepoMap:
    """Map `files` (host or sandbox) for `task`, leaving out what is already in the chat."""
    sources = [SourceFile(*item) for item in files]
    index = index_files(sources, cache)
    all_paths = [source.path for source in sources]
    ranking = rank_definitions(index.names, mentioned_idents=mentioned_identifiers(task),
                               mentioned_paths=mentioned_files(task, all_paths) if task else (),
                               chat_files=chat_files, all_paths=all_paths, limit=max_tokens)
    entries = _affordable(_map_entries(ranking, all_paths, set(chat_files)), max_tokens)
    definitions = index.definitions({path for path, ident in entries if ident is not None})
    text, shown = fit_to_budget(entries, definitions, max_tokens)
    return RepoMap(text=text, files=len(all_paths), parsed=index.parsed, shown_definitions=shown)


MapEntry = tuple[str, str | None]  # (path, identifier), or (path, None) for a file shown by name only


def _map_entries(ranking: Ranking, all_paths: list[str], chat: set[str]) -> list[MapEntry]:
    entries: list[MapEntry] = [entry for entry in ranking.definitions if entry[0] not in chat]
    listed = {path for path, _ in entries} | chat
    by_rank = sorted(ranking.file_ranks, key=lambda path: -ranking.file_ranks[path])
    for path in by_rank + sorted(all_paths):
        if path not in listed:
            listed.add(path)
            entries.append((path, None))
    return entries


def _affordable(entries: list[MapEntry], max_tokens: int) -> list[MapEntry]:
    """The entries that could fit at best: each costs at least its name's line, each new file
    its header. Bounds the search, and how many files' definitions need loading."""
    budget = max_tokens * CHARS_PER_TOKEN
    seen: set[str] = set()
    for count, (path, ident) in enumerate(entries):
        budget -= (len(ident) + 2 if ident is not None else 0) + (len(path) + 2 if path not in seen else 0)
        seen.add(path)
        if budget < 0:
            return entries[:count]
    return entries


def fit_to_budget(entries: list[MapEntry], definitions: dict[str, Sequence[Definition]],
                  max_tokens: int) -> tuple[str, int]:
    """The longest prefix of `entries` whose rendering fits `max_tokens`, found by bisection."""
    low, high = 0, min(len(entries), max_tokens)  # every entry costs at least a token
    best = ""
    while low < high:
        middle = (low + high + 1) // 2
        text = render_map(entries[:middle], definitions)
        if len(text) / CHARS_PER_TOKEN <= max_tokens:
            low, best = middle, text
        else:
            high = middle - 1
    shown = sum(1 for _, ident in entries[:low] if ident is not None)
    return best, shown


def render_map(entries: Sequence[MapEntry], definitions: dict[str, Sequence[Definition]]) -> str:
    """Files in path order; under each, its chosen definitions and their enclosing scopes. Lines are as
    views of their file show them (tools/encoding.py), with one note naming the files that are not UTF-8."""
    chosen: dict[str, set[str]] = {}
    for path, ident in entries:
        names = chosen.setdefault(path, set())
        if ident is not None:
            names.add(ident)
    blocks = []
    escaped: list[str] = []  # files not UTF-8, whose lines are shown escaped
    for path in sorted(chosen):
        shown = _shown_definitions(definitions.get(path, ()), chosen[path])
        if not shown:
            blocks.append(shown_name(path))
            continue
        if not all(definition.utf8 for definition in shown):
            escaped.append(shown_name(path))
        lines = [f"{shown_name(path)}:"]
        previous = 0
        for definition in shown:
            if definition.line > previous + 1:
                lines.append("⋮")
            lines.append(f"│{definition.text}"[:MAX_LINE_CHARS])
            previous = definition.line
        if shown[-1].end_line > shown[-1].line:
            lines.append("⋮")
        blocks.append("\n".join(lines))
    if escaped:
        blocks.append(not_utf8_note(escaped))
    return "\n".join(blocks) + "\n" if blocks else ""



def _shown_definitions(definitions: Sequence[Definition], names: set[str]) -> list[Definition]:
    """The definitions named, plus every definition enclosing them, one per line."""
    picked: dict[int, Definition] = {}
    for index, definition in enumerate(definitions):
        if definition.name in names and definition.kind not in CONTAINER_KINDS:
            while index >= 0 and index not in picked:
                picked[index] = definitions[index]
                index = definitions[index].parent
    by_line = {definition.line: definition for definition in picked.values()}
    return [by_line[line] for line in sorted(by_line)]
