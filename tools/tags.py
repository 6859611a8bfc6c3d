"""Definitions and references per file, from tree-sitter tag queries, cached by content hash.

Each language has one query in the spirit of the `tags.scm` files of GitHub and Aider:
`@definition.<kind>` marks the *name* of a class, function, struct, ... and `@reference`
marks an identifier that uses one (calls, base classes, type names). One query run per
file captures both; the definition's full node is found by walking up from its name.

Tags of a file are keyed by a hash of its language and bytes, so an unchanged file is never
parsed twice, whichever repository or sandbox it came from.

Cost stays linear in the input: a definition keeps at most `LONG_LINE_BYTES` of the
line holding its name (a minified bundle has thousands of definitions on one line), and
generated or minified files (`looks_generated`) are listed in a map by name only.

The cache is read as JSON with a checked header and every row's shape checked, never
with a format that can run code or crash the reader (marshal, pickle): whoever can write
the cache file must not be able to do more than make the map wrong.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

from tree_sitter import Node, Query, QueryCursor

from sandbox.cache import cache_home
from tools.encoding import Parseable, has_raw_bytes
from tools.languages import language_name_for, load_language, looks_generated, parser_for_language

FORMAT_VERSION = 3  # 1 was marshal; 2 cut names at a byte that is not UTF-8 and had no `utf8`
CACHE_HEADER = f"moe-agent tag cache, JSON rows, format {FORMAT_VERSION}"
MAX_FILE_BYTES = 1_000_000  # bigger files are generated or minified: noise in a map
LONG_LINE_BYTES = 160  # a longer line holding a definition's name is cut to a window around the name
DEFINITION_TEXT_BYTES = 100  # the window; a map shows at most 100 characters of a line
PARALLEL_MIN_FILES = 200  # below this, starting worker processes costs more than it saves

# Kinds that only scope other definitions (methods of `impl Foo`, names in a C++ namespace):
# shown as parents, never counted as the place a name is defined.
CONTAINER_KINDS = frozenset({"impl", "namespace"})
# A function directly inside one of these is a method.
CLASS_KINDS = frozenset({"class", "struct", "interface", "trait", "impl", "enum", "union"})

_JS_DEFINITIONS = """
(function_declaration name: (identifier) @definition.function)
(generator_function_declaration name: (identifier) @definition.function)
(method_definition name: [(property_identifier) (private_property_identifier)] @definition.method)
(variable_declarator name: (identifier) @definition.function value: [(arrow_function) (function_expression)])
(assignment_expression
  left: (member_expression property: (property_identifier) @definition.function)
  right: [(arrow_function) (function_expression)])
(pair key: (property_identifier) @definition.function value: [(arrow_function) (function_expression)])
(call_expression function: [(identifier) @reference (member_expression property: (property_identifier) @reference)])
(new_expression constructor: [(identifier) @reference (member_expression property: (property_identifier) @reference)])
"""

_TS_DEFINITIONS = _JS_DEFINITIONS + """
(class_declaration name: (type_identifier) @definition.class)
(abstract_class_declaration name: (type_identifier) @definition.class)
(class name: (type_identifier) @definition.class)
(interface_declaration name: (type_identifier) @definition.interface)
(type_alias_declaration name: (type_identifier) @definition.type)
(enum_declaration name: (identifier) @definition.enum)
(internal_module name: (identifier) @definition.module)
(function_signature name: (identifier) @definition.function)
(method_signature name: (property_identifier) @definition.method)
(abstract_method_signature name: (property_identifier) @definition.method)
(extends_clause value: (identifier) @reference)
(implements_clause (type_identifier) @reference)
(extends_type_clause type: (type_identifier) @reference)
(type_annotation (type_identifier) @reference)
(generic_type name: (type_identifier) @reference)
"""

_C_FAMILY = """
(function_declarator declarator: (identifier) @definition.function)
(struct_specifier name: (type_identifier) @definition.struct body: (field_declaration_list))
(union_specifier name: (type_identifier) @definition.union body: (field_declaration_list))
(enum_specifier name: (type_identifier) @definition.enum body: (enumerator_list))
(type_definition declarator: (type_identifier) @definition.type)
(preproc_function_def name: (identifier) @definition.macro)
(call_expression function: [(identifier) @reference (field_expression field: (field_identifier) @reference)])
(type_identifier) @reference
"""


@dataclass(frozen=True)
class LanguageTags:
    """A language's tag query, and the node types that are the full extent of a definition."""

    query: str
    definition_nodes: frozenset[str]


TAG_QUERIES: dict[str, LanguageTags] = {
    "python": LanguageTags(
        """
        (class_definition name: (identifier) @definition.class)
        (function_definition name: (identifier) @definition.function)
        (module (expression_statement (assignment left: (identifier) @definition.constant)))
        (call function: [(identifier) @reference (attribute attribute: (identifier) @reference)])
        (class_definition superclasses: (argument_list
          [(identifier) @reference (attribute attribute: (identifier) @reference)]))
        """,
        frozenset({"class_definition", "function_definition", "assignment"}),
    ),
    "javascript": LanguageTags(
        _JS_DEFINITIONS + """
        (class_declaration name: (identifier) @definition.class)
        (class name: (identifier) @definition.class)
        (class_heritage (identifier) @reference)
        """,
        frozenset({"class_declaration", "class", "function_declaration", "generator_function_declaration",
                   "method_definition", "variable_declarator", "assignment_expression", "pair"}),
    ),
    "typescript": LanguageTags(
        _TS_DEFINITIONS,
        frozenset({"class_declaration", "abstract_class_declaration", "class", "interface_declaration",
                   "type_alias_declaration", "enum_declaration", "internal_module", "function_declaration",
                   "generator_function_declaration", "function_signature", "method_definition",
                   "method_signature", "abstract_method_signature", "variable_declarator",
                   "assignment_expression", "pair"}),
    ),
    "go": LanguageTags(
        """
        (function_declaration name: (identifier) @definition.function)
        (method_declaration name: (field_identifier) @definition.method)
        (type_spec name: (type_identifier) @definition.struct type: (struct_type))
        (type_spec name: (type_identifier) @definition.interface type: (interface_type))
        (type_spec name: (type_identifier) @definition.type
          type: [(type_identifier) (qualified_type) (pointer_type) (function_type) (map_type)
                 (slice_type) (array_type) (channel_type) (generic_type)])
        (type_alias name: (type_identifier) @definition.type)
        (call_expression function: [(identifier) @reference (selector_expression field: (field_identifier) @reference)])
        (type_identifier) @reference
        """,
        frozenset({"function_declaration", "method_declaration", "type_spec", "type_alias"}),
    ),
    "rust": LanguageTags(
        """
        (struct_item name: (type_identifier) @definition.struct)
        (enum_item name: (type_identifier) @definition.enum)
        (union_item name: (type_identifier) @definition.union)
        (type_item name: (type_identifier) @definition.type)
        (trait_item name: (type_identifier) @definition.trait)
        (function_item name: (identifier) @definition.function)
        (function_signature_item name: (identifier) @definition.function)
        (mod_item name: (identifier) @definition.module)
        (macro_definition name: (identifier) @definition.macro)
        (const_item name: (identifier) @definition.constant)
        (static_item name: (identifier) @definition.constant)
        (impl_item type: [(type_identifier) @definition.impl (generic_type type: (type_identifier) @definition.impl)])
        (call_expression function: [(identifier) @reference
                                    (field_expression field: (field_identifier) @reference)
                                    (scoped_identifier name: (identifier) @reference)])
        (macro_invocation macro: (identifier) @reference)
        (type_identifier) @reference
        """,
        frozenset({"struct_item", "enum_item", "union_item", "type_item", "trait_item", "function_item",
                   "function_signature_item", "mod_item", "macro_definition", "const_item", "static_item",
                   "impl_item"}),
    ),
    "java": LanguageTags(
        """
        (class_declaration name: (identifier) @definition.class)
        (record_declaration name: (identifier) @definition.class)
        (interface_declaration name: (identifier) @definition.interface)
        (annotation_type_declaration name: (identifier) @definition.interface)
        (enum_declaration name: (identifier) @definition.enum)
        (method_declaration name: (identifier) @definition.method)
        (constructor_declaration name: (identifier) @definition.method)
        (method_invocation name: (identifier) @reference)
        (type_identifier) @reference
        """,
        frozenset({"class_declaration", "record_declaration", "interface_declaration",
                   "annotation_type_declaration", "enum_declaration", "method_declaration",
                   "constructor_declaration"}),
    ),
    "c": LanguageTags(
        _C_FAMILY,
        frozenset({"function_definition", "declaration", "field_declaration", "struct_specifier",
                   "union_specifier", "enum_specifier", "type_definition", "preproc_function_def"}),
    ),
    "cpp": LanguageTags(
        _C_FAMILY + """
        (function_declarator declarator: [(field_identifier) (destructor_name) (operator_name)] @definition.function)
        (function_declarator declarator: (qualified_identifier
          name: [(identifier) (destructor_name) (operator_name)] @definition.method))
        (function_declarator declarator: (qualified_identifier name: (qualified_identifier
          name: [(identifier) (destructor_name) (operator_name)] @definition.method)))
        (class_specifier name: (type_identifier) @definition.class body: (field_declaration_list))
        (namespace_definition name: (namespace_identifier) @definition.namespace)
        (alias_declaration name: (type_identifier) @definition.type)
        (call_expression function: (qualified_identifier name: (identifier) @reference))
        """,
        frozenset({"function_definition", "declaration", "field_declaration", "struct_specifier",
                   "union_specifier", "enum_specifier", "type_definition", "preproc_function_def",
                   "class_specifier", "namespace_definition", "alias_declaration", "template_declaration"}),
    ),
    "ruby": LanguageTags(
        """
        (class name: [(constant) @definition.class (scope_resolution name: (constant) @definition.class)])
        (module name: [(constant) @definition.module (scope_resolution name: (constant) @definition.module)])
        (method name: (_) @definition.method)
        (singleton_method name: (_) @definition.method)
        (call method: (identifier) @reference)
        (call receiver: (constant) @reference)
        (superclass [(constant) @reference (scope_resolution name: (constant) @reference)])
        """,
        frozenset({"class", "module", "method", "singleton_method"}),
    ),
}
TAG_QUERIES["tsx"] = TAG_QUERIES["typescript"]


class Definition(NamedTuple):
    """A named definition; lines are 1-based, `line` is where the name is."""

    name: str
    kind: str
    line: int
    start_line: int
    end_line: int
    parent: int  # index of the enclosing definition in the same file, -1 at top level
    text: str  # the source line holding the name, for rendering maps
    utf8: bool = True  # False when the file is not UTF-8: `name` and `text` are then escaped (tools/encoding.py)


class FileNames(NamedTuple):
    """What ranking needs of a file: the names it defines and how often it uses each name."""

    defined: tuple[str, ...]
    references: dict[str, int]


class FileTags(NamedTuple):
    """Everything extracted from one file."""

    definitions: tuple[Definition, ...]
    references: dict[str, int]

    def names(self) -> FileNames:
        return FileNames(tuple(d.name for d in self.definitions if d.kind not in CONTAINER_KINDS), self.references)


EMPTY_TAGS = FileTags((), {})


class Symbol(NamedTuple):
    """An outline entry: what `outline` returns for the model to navigate a file."""

    name: str
    kind: str
    start_line: int
    end_line: int
    parent: str | None
    depth: int = 0  # definitions enclosing this one in the syntax tree: 0 at the top, 1 for a method


OUTLINE_MAX_CHARS = 200_000  # an outline stops here: 30,000 definitions in one file need not all print

@functools.cache
def tag_query(language: str) -> Query | None:
    """The compiled tag query: compiling costs more than running it on a small file."""
    grammar = load_language(language)
    spec = TAG_QUERIES.get(language)
    return Query(grammar, spec.query) if grammar is not None and spec is not None else None


def extract_tags(language: str, source: bytes) -> FileTags:
    """Parse `source` and run the language's tag query over it; names and lines are as views of the file
    show them (escaped for a file that is not UTF-8, whose identifiers keep their bytes: `caf\\xe9_x`)."""
    parser = parser_for_language(language)
    query = tag_query(language)
    if parser is None or query is None:
        return EMPTY_TAGS
    parseable = Parseable.of(source)
    source = parseable.data
    root = parser.parse(source).root_node
    captures = QueryCursor(query).captures(root)
    lines = source.split(b"\n")
    found: list[tuple[int, int, Node, Node, str]] = []
    definition_starts: set[int] = set()
    outer_types = TAG_QUERIES[language].definition_nodes
    for capture, nodes in captures.items():
        if not capture.startswith("definition."):
            continue
        kind = capture[len("definition."):]
        for name_node in nodes:
            outer = _enclosing_definition(name_node, outer_types)
            found.append((outer.start_byte, -outer.end_byte, name_node, outer, kind))
            if kind not in CONTAINER_KINDS:
                definition_starts.add(name_node.start_byte)
    found.sort(key=lambda item: (item[0], item[1]))
    definitions: list[Definition] = []
    open_scopes: list[tuple[int, int]] = []  # (end_byte, index) of definitions enclosing the cursor
    for start, negative_end, name_node, outer, kind in found:
        while open_scopes and open_scopes[-1][0] <= start:
            open_scopes.pop()
        parent = open_scopes[-1][1] if open_scopes else -1
        if kind == "function" and parent >= 0 and definitions[parent].kind in CLASS_KINDS:
            kind = "method"
        row, column = name_node.start_point
        text = definition_text(lines[row], column, parseable) if row < len(lines) else ""
        name = parseable.text(source[name_node.start_byte:name_node.end_byte])
        end_row, end_column = outer.end_point  # a node ending at column 0 ends on the line before
        end_line = max(end_row + (end_column > 0), outer.start_point[0] + 1)
        definitions.append(Definition(name, kind, row + 1, outer.start_point[0] + 1, end_line, parent, text,
                                      parseable.utf8))
        open_scopes.append((-negative_end, len(definitions) - 1))
    counts = Counter(source[node.start_byte:node.end_byte] for node in captures.get("reference", ())
                     if node.start_byte not in definition_starts)
    references = {parseable.text(name): count for name, count in counts.items()}
    return FileTags(tuple(definitions), references)


def definition_text(line: bytes, column: int, parseable: Parseable) -> str:
    """The line holding a definition's name, or on a long line the part from a little before the name."""
    if len(line) > LONG_LINE_BYTES:
        start = max(column - DEFINITION_TEXT_BYTES // 5, 0)
        line = (b"..." if start else b"") + line[start:start + DEFINITION_TEXT_BYTES] + b"..."
    return parseable.text(line.rstrip())


def _enclosing_definition(name_node: Node, outer_types: frozenset[str]) -> Node:
    """The whole definition a name belongs to: the nearest ancestor of a definition type."""
    node = name_node.parent
    for _ in range(4):
        if node is None:
            break
        if node.type in outer_types:
            return node
        node = node.parent
    return name_node.parent or name_node


def supports_tags(language: str) -> bool:
    return language in TAG_QUERIES and load_language(language) is not None


def outline(path: str, source: bytes) -> list[Symbol] | None:
    """A file's classes, functions and the like, methods under their class, with line ranges.

    None for minified or generated code: its syntax tree alone would take ~60 bytes per byte.
    """
    language = language_name_for(path)
    if language is None:
        return []
    if looks_generated(path, source):
        return None
    definitions = extract_tags(language, source).definitions
    depths: list[int] = []  # a parent always comes before its children
    for d in definitions:
        depths.append(depths[d.parent] + 1 if d.parent >= 0 else 0)
    return [
        Symbol(d.name, d.kind, d.start_line, d.end_line, definitions[d.parent].name if d.parent >= 0 else None, depth)
        for d, depth in zip(definitions, depths)
        if d.kind != "constant"
    ]


def format_outline(symbols: Sequence[Symbol], max_chars: int = OUTLINE_MAX_CHARS) -> str:
    """One line per symbol, line range first, indented by its nesting in the syntax tree (definitions
    that share a line are siblings, not each inside the last). Stops after about `max_chars`
    characters with a line saying how many symbols were left out, so the text stays bounded."""
    width = len(str(max((s.end_line for s in symbols), default=0)))
    lines: list[str] = []
    size = 0
    for shown, symbol in enumerate(symbols):
        span = f"{symbol.start_line}-{symbol.end_line}"
        line = f"{span:>{2 * width + 1}}  {'    ' * min(symbol.depth, 20)}{symbol.kind} {symbol.name}"
        if size + len(line) > max_chars:
            lines.append(f"... {len(symbols) - shown} more symbols not shown (outline cut at {max_chars} characters)")
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


# ---- the index: tags for many files, from the cache or parsed (in parallel when many) ----


class Stamp(NamedTuple):
    """Where a host file is and its size and mtime: lets a warm run skip reading it at all."""

    location: str
    size: int
    mtime_ns: int


class SourceFile(NamedTuple):
    """A file to index: its path relative to the repository root and how to read its bytes.

    A plain `(path, read)` pair is a valid SourceFile; `stamp` is only known for host files.
    """

    path: str
    read: Callable[[], bytes]
    stamp: Stamp | None = None


class TagIndex:
    """Names of every supported file for ranking; full definitions on demand, for the few shown.

    Loading only names keeps a warm map from unpacking ~50k definitions it will not render.
    """

    def __init__(self, names: dict[str, FileNames], keys: dict[str, bytes], parsed: dict[bytes, FileTags],
                 cache: TagCache | None) -> None:
        self.names = names
        self.parsed = len(parsed)
        self.cached = len(names) - len(parsed)
        self._keys = keys
        self._fresh = parsed
        self._cache = cache

    def definitions(self, paths: Iterable[str]) -> dict[str, tuple[Definition, ...]]:
        wanted = {path: self._keys[path] for path in paths if path in self._keys}
        missing = [key for key in wanted.values() if key not in self._fresh]
        stored = self._cache.load_definitions(missing) if self._cache is not None and missing else {}
        return {path: self._fresh[key].definitions if key in self._fresh else stored.get(key, ())
                for path, key in wanted.items()}


def content_key(language: str, source: bytes) -> bytes:
    """The cache key: a hash of the bytes, salted with the grammar that reads them."""
    return hashlib.blake2b(source, digest_size=20, person=language.encode()[:16]).digest()


class TagCache:
    """Tags keyed by content hash, in one SQLite file, so one query loads a whole repository.

    Names (for ranking) and definitions (for rendering) are stored apart so that a map
    unpacks only what it shows. A second table remembers the content key of host files by
    (location, size, mtime), the way git's index does, so an unchanged tree is not even
    read. Rows are JSON, checked for shape when read; a file without the expected header
    is not used. Any cache failure (read-only home, corrupt or hostile file) degrades to
    parsing, never to an error.
    """

    RACY_NS = 2_000_000_000  # files changed this recently may change again within the same mtime tick

    def __init__(self, directory: Path | str | None = None) -> None:
        where = Path(directory).expanduser() if directory else cache_home() / "tags"
        self.path = where / f"tags-v{FORMAT_VERSION}.sqlite3"
        self._db: sqlite3.Connection | None = None
        self._failed = False

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and not self._failed:
            db = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                db.execute("PRAGMA trusted_schema=OFF")  # a planted view or trigger runs nothing with side effects
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last write on power loss is fine
                with db:  # a new file gets the header; a file someone else made must already have it
                    db.execute("BEGIN IMMEDIATE")
                    if not db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall():
                        db.execute("CREATE TABLE header (text TEXT NOT NULL)")
                        db.execute("INSERT INTO header VALUES (?)", (CACHE_HEADER,))
                if db.execute("SELECT text FROM header").fetchall() != [(CACHE_HEADER,)]:
                    raise sqlite3.DatabaseError(f"{self.path} is not a tag cache of format {FORMAT_VERSION}")
                db.execute("CREATE TABLE IF NOT EXISTS tags (key BLOB PRIMARY KEY, names TEXT NOT NULL, "
                           "definitions TEXT NOT NULL) WITHOUT ROWID")
                db.execute("CREATE TABLE IF NOT EXISTS stamps (location TEXT PRIMARY KEY, size INTEGER, "
                           "mtime_ns INTEGER, key BLOB) WITHOUT ROWID")
                self._db = db
            except (sqlite3.Error, OSError):
                if db is not None:
                    db.close()
            self._failed = self._db is None
        return self._db

    def _select(self, sql: str, values: Sequence[object]) -> list[tuple]:
        db = self._connect()
        rows: list[tuple] = []
        if db is None:
            return rows
        try:
            for start in range(0, len(values), 900):
                chunk = values[start:start + 900]
                rows += db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
        except sqlite3.Error:
            return []
        return rows

    def _write(self, sql: str, rows: list[tuple]) -> None:
        db = self._connect()
        if db is None or not rows:
            return
        try:
            with db:
                db.execute("BEGIN")
                db.executemany(sql, rows)
        except sqlite3.Error:
            pass

    def load_names(self, keys: Sequence[bytes]) -> dict[bytes, FileNames]:
        rows = self._select("SELECT key, names FROM tags WHERE key IN ({marks})", keys)
        return {key: names for key, data in rows if (names := _names_from_json(data)) is not None}

    def load_definitions(self, keys: Sequence[bytes]) -> dict[bytes, tuple[Definition, ...]]:
        rows = self._select("SELECT key, definitions FROM tags WHERE key IN ({marks})", keys)
        return {key: found for key, data in rows if (found := _definitions_from_json(data)) is not None}

    def store(self, items: dict[bytes, FileTags]) -> None:
        self._write("INSERT OR REPLACE INTO tags VALUES (?, ?, ?)",
                    [(key, _json(tags.names()), _json(tags.definitions)) for key, tags in items.items()])

    def known_keys(self, stamps: Sequence[Stamp]) -> dict[Stamp, bytes]:
        """Content keys of files whose location, size and mtime are as recorded."""
        rows = self._select("SELECT location, size, mtime_ns, key FROM stamps WHERE location IN ({marks})",
                            [stamp.location for stamp in stamps if not has_raw_bytes(stamp.location)])
        return {Stamp(location, size, mtime_ns): key for location, size, mtime_ns, key in rows
                if type(location) is str and type(size) is int and type(mtime_ns) is int and type(key) is bytes}

    def remember_keys(self, keys: dict[Stamp, bytes]) -> None:
        settled_before = time.time_ns() - self.RACY_NS
        # SQLite text is UTF-8: a name that is not is found by content key only, never by stamp.
        self._write("INSERT OR REPLACE INTO stamps VALUES (?, ?, ?, ?)",
                    [(*stamp, key) for stamp, key in keys.items()
                     if stamp.mtime_ns < settled_before and not has_raw_bytes(stamp.location)])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _loads(data: object) -> object:
    if not isinstance(data, str):
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _names_from_json(data: object) -> FileNames | None:
    """A row's names if it has the shape `store` writes ([[name, ...], {name: count}]), else None (a miss)."""
    value = _loads(data)
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], list)
            and isinstance(value[1], dict)):
        return None
    defined, references = value
    if not all(type(name) is str for name in defined) or not all(type(n) is int for n in references.values()):
        return None
    return FileNames(tuple(defined), references)


def _definitions_from_json(data: object) -> tuple[Definition, ...] | None:
    """A row's definitions if each has Definition's fields and types, else None (a miss)."""
    value = _loads(data)
    if not isinstance(value, list):
        return None
    definitions = []
    for row in value:
        if not (isinstance(row, list) and len(row) == 8 and type(row[0]) is str and type(row[1]) is str
                and all(type(number) is int for number in row[2:6]) and type(row[6]) is str
                and type(row[7]) is bool):
            return None
        if not -1 <= row[5] < len(definitions):  # a parent comes before its children
            return None
        definitions.append(_as_definition(row))
    return tuple(definitions)


_as_definition = functools.partial(tuple.__new__, Definition)  # C-speed construction


def index_files(files: Iterable[SourceFile | tuple[str, Callable[[], bytes]]],
                cache: TagCache | None = None) -> TagIndex:
    """Names of every file in a supported language; only contents the cache has not seen are parsed."""
    wanted = [SourceFile(*item) for item in files]
    wanted = [(item, language) for item in wanted
              if (language := language_name_for(item.path)) is not None and supports_tags(language)]
    stamps = [item.stamp for item, _ in wanted if item.stamp is not None]
    stamped = cache.known_keys(stamps) if cache is not None and stamps else {}
    keys = {item.path: stamped.get(item.stamp) for item, _ in wanted}  # path -> content key, None if unread
    known = cache.load_names([key for key in keys.values() if key]) if cache is not None else {}
    sources: dict[bytes, tuple[str, bytes]] = {}  # key -> (language, source) of the files read
    new_stamps: dict[Stamp, bytes] = {}
    for item, language in wanted:
        if keys[item.path] in known:
            continue
        try:
            source = item.read()
        except OSError:
            source = None
        if source is None or len(source) > MAX_FILE_BYTES or looks_generated(item.path, source):
            del keys[item.path]
            continue
        key = keys[item.path] = content_key(language, source)
        sources[key] = (language, source)
        if item.stamp is not None:
            new_stamps[item.stamp] = key
    if cache is not None:
        known.update(cache.load_names([key for key in sources if key not in known]))
    parsed = _extract_many([(key, job) for key, job in sources.items() if key not in known])
    known.update((key, tags.names()) for key, tags in parsed.items())
    if cache is not None:
        cache.store(parsed)
        cache.remember_keys(new_stamps)
    return TagIndex({path: known[key] for path, key in keys.items()}, keys, parsed, cache)


def _extract_many(jobs: list[tuple[bytes, tuple[str, bytes]]]) -> dict[bytes, FileTags]:
    workers = min(len(os.sched_getaffinity(0)), 8)
    # Workers are forked (spawn would re-run the caller's main module), and forking is only
    # safe while no other thread could be holding a lock the child would need.
    if len(jobs) < PARALLEL_MIN_FILES or workers < 2 or threading.active_count() > 1:
        return {key: extract_tags(language, source) for key, (language, source) in jobs}
    batches = [jobs[i::workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        return {key: tags for batch in pool.map(_extract_batch, batches) for key, tags in batch}


def _extract_batch(jobs: list[tuple[bytes, tuple[str, bytes]]]) -> list[tuple[bytes, FileTags]]:
    return [(key, extract_tags(language, source)) for key, (language, source) in jobs]
