"""Keeping secrets out of what we write and post: endpoint URLs without credentials, known secrets masked.

A model endpoint is often a repository secret (the CI workflow passes `OPENAI_BASE_URL`
from one) and may carry credentials in its userinfo (`https://user:pass@host/v1`) or its
query (`?api-key=...`). Trajectories are uploaded as CI artifacts and messages are posted
on issues, so both are recorded through `public_url` and `Redactor`; every http(s) URL in
text written or printed goes through `redact_urls`, so credentials of an endpoint the
product did not know (a failover server, one named in an error) are dropped as well.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters whose values are credentials: api_key, api-key, token, access_token, sig...
SECRET_PARAMETER = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential|session", re.IGNORECASE)
MIN_SECRET_CHARS = 4  # shorter values would mask ordinary words


def public_url(url: str) -> str:
    """`url` without userinfo and with secret-looking query values masked; anything unparsable is masked whole."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    if ":" in host:
        host = f"[{host}]"
    query = urlencode([(name, MASK if SECRET_PARAMETER.search(name) else value)
                       for name, value in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, host + port, parts.path, query, parts.fragment))


# An http(s) URL inside free text or a JSON string: it ends at whitespace, a quote, a backslash or <>.
_URL_IN_TEXT = re.compile(r"(?i)\bhttps?://[^\s\"'<>\\]+")
_USERINFO = re.compile(r"(?i)^(https?://)[^/?#]*@")
_SECRET_QUERY_VALUE = re.compile(r"([?&;][^=&;#]*?(?:" + SECRET_PARAMETER.pattern + r")[^=&;#]*=)[^&;#]*",
                                 re.IGNORECASE)


def redact_urls(text: str) -> str:
    """`text` with every http(s) URL's userinfo dropped and its secret-looking query values masked.

    Used on every line the product prints about an endpoint and on every trajectory line.
    """
    def public(match: re.Match[str]) -> str:
        url = _USERINFO.sub(r"\1", match.group(0), count=1)
        return _SECRET_QUERY_VALUE.sub(lambda m: m.group(1) + (MASK if m.group(0) != m.group(1) else ""), url)

    return _URL_IN_TEXT.sub(public, text)


def url_secrets(url: str) -> list[str]:
    """The credentials inside `url`: userinfo and secret-looking query values, raw and percent-decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [parts.username or "", parts.password or ""]
    found += [value for name, value in parse_qsl(parts.query, keep_blank_values=True) if SECRET_PARAMETER.search(name)]
    found += [quote(value, safe="") for value in found]
    found += [unquote(value) for value in found]
    return [value for value in dict.fromkeys(found) if len(value) >= MIN_SECRET_CHARS]


class Redactor:
    """Replaces each known secret in text with `***`, longest first (one secret may contain another)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        given = {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
        escaped = {json.dumps(s, ensure_ascii=False)[1:-1] for s in given}  # as it appears inside a JSON string
        self.secrets = sorted(given | escaped, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return redact_urls(text)
