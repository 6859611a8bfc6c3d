"""Request bodies a JSON encoder can write: lone surrogates left in a string are shown as text.

Text from a repository, an issue or a tool carries a byte that is not UTF-8 as a lone
surrogate (`tools/encoding.py`); no JSON encoder writes one as UTF-8, so one such byte would
fail the whole request. The sources escape their text themselves; this is the last line of
defence, applied to every request. A conversation's requests grow by a few messages a step
and are otherwise the same (the history is append-only but for compaction), so
`SurrogateFree` walks only what changed since the same thread's previous request.
"""

from __future__ import annotations

import threading
from typing import Any

from tools.encoding import visible


def without_surrogates(value: Any) -> Any:
    """`value` (a request body: dicts, lists, strings) with every lone surrogate left in a string shown as
    `\\xNN` / `\\udXXX` text (`tools.encoding.visible`). Dicts and lists are rebuilt, strings that need no
    change are shared; the caller's value is never changed."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {key: without_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_surrogates(item) for item in value]
    return value


class SurrogateFree:
    """`without_surrogates` for successive requests, walking only the list items (messages, tool
    schemas) that are new or changed since the calling thread's previous request.

    Each thread keeps the clean copy it made of every item of its previous request (new dicts and
    lists sharing the strings). An item equal to the copy at its index is surrogate-free and sent as
    it is: equality of the caller's message and our copy is a C-level walk that stops at shared
    strings, and it still sees a message changed in place, a compaction that moved messages, or
    another conversation's request. Anything else is walked. The output is always equal to
    `without_surrogates(body)`, as JSON too. Per thread, because a batch shares one model client
    among its workers, each running its own conversation.
    """

    def __init__(self) -> None:
        self._previous = threading.local()

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        previous: dict[str, Any] = getattr(self._previous, "body", {})
        sent: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        for key, value in body.items():
            before = previous.get(key)
            if isinstance(value, list) and isinstance(before, list):
                sent[key], kept[key] = _reusing(value, before)
            else:
                sent[key] = kept[key] = without_surrogates(value)
        self._previous.body = kept
        return sent


def _reusing(items: list[Any], before: list[Any]) -> tuple[list[Any], list[Any]]:
    """(`items` as sent, the clean copies to compare the next request with): an item equal to the clean
    copy at its index in `before` is sent as it is (it has no surrogate; sending it, not the copy, keeps
    `True` from being sent as the `1` it equals); any other is walked."""
    sent: list[Any] = []
    kept: list[Any] = []
    for index, item in enumerate(items):
        if index < len(before) and item == before[index]:
            sent.append(item)
            kept.append(before[index])
        else:
            clean = without_surrogates(item)
            sent.append(clean)
            kept.append(clean)
    return sent, kept
