"""Keeping secrets out of what we write and post: endpoint URLs without credentials, known secrets masked.

A model endpoint is often a repository secret (the CI workflow passes `OPENAI_BASE_URL`
from one) and may carry credentials in its userinfo (`https://user:pass@host/v1`) or its
query (`?api-key=...`). Trajectories are uploaded as CI artifacts and messages are posted
on issues, so both are recorded through `public_url` and `Redactor`; every http(s) URL in
text written or printed goes through `redact_urls`, so credentials of an endpoint the
product did not know (a failover server, one named in an error) are dropped as well.

Every secret this process holds is masked by `scrub` wherever text leaves it (trajectory
lines, `--json`, the terminal and job log, commit messages, pull requests, comments): those
of its environment (`environment_secrets`: `GITHUB_TOKEN`, `GH_TOKEN`, `OPENAI_API_KEY`, any
`*_TOKEN`, `*_KEY`, `*_SECRET`, `*_PASSWORD` whose value `looks_secret`) and those it obtained (`hold`: the user's
config's key and URL credentials, a token from `gh auth token`). A secret is found in its
escaped forms too (backslashes before punctuation, as Markdown and JSON escape it, once or
nested; `\\u00e4` escapes), split by invisible characters (any run of Unicode's default-ignorable
code points between two of its characters, raw or escaped: `_IGNORABLE`), percent-encoded
(`%2F`, `+` for a space, nested `%252F`) and base64-encoded (`_base64_forms`), so escaping or
encoding text cannot hide one from a scrub that comes after it. Records are scrubbed value by value before they are serialised
(`scrub_record`), and the serialised line once more.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
# URL parameters (query, or key=value pairs in the fragment as OAuth's implicit flow returns them) whose
# values are credentials, judged word by word: a name is split into words at `_`, `-`, `.`, brackets, digits
# and camelCase (`X-Amz-Signature`, `clientSecret`, `SAMLResponse`, `api_key[0]`), and is secret when one
# of its words is in SECRET_WORDS (`access_token`, `client_secret`, `db-pass`, `X-Amz-Credential`), or when
# the whole name is a run-together spelling in SECRET_NAMES (`apikey`, `sessionid`, `passwd`) or an Azure
# SAS field (`sv`, `sig`, `se`, `sp`, `skoid`...: the signature and the fields it signs;
# learn.microsoft.com/rest/api/storageservices/create-service-sas). A word only containing one is not a
# secret: `country_code`, `barcode`, `keyboard`, `author`, `passenger`, `monkey`, `designer` stay readable.
# `code` is a secret only as the whole name: OAuth's authorization `code` and Azure Functions' `?code=`
# (a function key); `zip_code`, `status_code`, `promo-code` are data (`auth_code`, `otp_code` are secret by
# their other word; `device_code`, `verification_code`, `access_code` by SECRET_NAMES). Likewise `sign`
# (a signature in many payment APIs) only whole: `sign_in`, `sign-up` are not.
SECRET_WORDS = frozenset({
    "key", "apikey", "token", "secret", "secrets", "pass", "passwd", "password", "passwords",
    "passphrase", "pwd", "pw", "sig", "signature", "auth", "authorization", "authkey", "credential",
    "credentials", "cred", "creds", "session", "sessionid", "sessid", "nonce", "ticket", "assertion", "saml",
    "jwt", "bearer", "otp", "totp", "hotp", "hmac", "verifier",
})
SECRET_NAMES = re.compile(
    r"code|sign|(?:device|verification|access)_?code|[a-z]*(?:apikey|accesskey|secretkey|privatekey|signingkey|masterkey|sharedkey"
    r"|subscriptionkey|accesstoken|authtoken|idtoken|refreshtoken|sessiontoken|sessionid|sessid|clientsecret"
    r"|password|passwd|passphrase)"
    r"|s(?:v|s|rt?|p|e|t|pr|i|ip|dd|k[a-z]{1,3})", re.IGNORECASE)
_NAME_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")


def secret_parameter(name: str) -> bool:
    """Whether a URL parameter named `name` carries a credential (see SECRET_WORDS): word by word, so that
    `client_secret`, `X-Amz-Signature` and `?pass=` are, and `country_code`, `barcode`, `keyboard` are not."""
    name = name.strip()
    if SECRET_NAMES.fullmatch(name):
        return True
    return any(word.lower() in SECRET_WORDS for word in _NAME_WORD.findall(name))


MIN_SECRET_CHARS = 4  # shorter values would mask ordinary words
MIN_ENVIRONMENT_SECRET_CHARS = 8  # an environment variable's value: `true`, `1`, `none` are settings, not secrets
# Environment variables whose values are secrets, by the last word of their name.
SECRET_VARIABLE = re.compile(r"(?:^|_)(?:TOKEN|SECRET|PASSWORD|PASSWD|PASS|KEY|CREDENTIALS?|PAT)$", re.IGNORECASE)
# The run's own credentials among them: held whatever they look like (the key sent to the model's endpoint,
# the tokens sent to GitHub). Any other variable is a secret by its name only when its value looks like one.
RUN_CREDENTIALS = frozenset({"OPENAI_API_KEY", "GITHUB_TOKEN", "GH_TOKEN"})
# A value that reads as one to three ordinary words (each all lower case, all upper case or capitalised;
# joined by `-`, `_`, `.` or a space) or as a number below 16 digits: `postgres`, `changeme`, `Postgres`,
# `dev_password`, `20240101`. Such a value under a secret-looking name (`POSTGRES_PASSWORD=postgres`, the
# Docker image's documented default) is a local setting that the repository itself usually spells out, and
# masking it would rewrite the word wherever it occurs (a task `make it work with postgres`, the commit
# message, the branch name). Digits, mixed case inside a word, other punctuation or a fourth word
# (`correct-horse-battery-staple`, a passphrase) make it look like a secret.
_ORDINARY_VALUE = re.compile(r"(?:[a-z]+|[A-Z][a-z]*|[A-Z]+)(?:[-_. ](?:[a-z]+|[A-Z][a-z]*|[A-Z]+)){0,2}|[0-9]{1,15}")


def looks_secret(value: str) -> bool:
    """Whether an environment variable's value, held only because of its name (`SECRET_VARIABLE`, not one of
    `RUN_CREDENTIALS`), looks like a secret: 8 characters or more and not ordinary words (`_ORDINARY_VALUE`)."""
    value = value.strip()
    return len(value) >= MIN_ENVIRONMENT_SECRET_CHARS and not _ORDINARY_VALUE.fullmatch(value)


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
    query = _masked_pairs(parts.query)
    fragment = _masked_pairs(parts.fragment) if "=" in parts.fragment else parts.fragment
    return urlunsplit((parts.scheme, host + port, parts.path, query, fragment))


def _masked_pairs(text: str) -> str:
    """`name=value&...` (a query, or a fragment of such pairs) with secret-looking names' values masked."""
    return urlencode([(name, MASK if secret_parameter(name) else value)
                      for name, value in parse_qsl(text, keep_blank_values=True)], safe="*")


# An http(s) URL inside free text or a JSON string: it ends at whitespace, a quote, a backslash or <>,
# but not at backslashes escaping a separator (`?a=K\&sig=S`, as a shell command types it; doubled in JSON).
_URL_IN_TEXT = re.compile(r"(?i)\bhttps?://(?:[^\s\"'<>\\]|\\+(?=[&;?=#]))+")
_USERINFO = re.compile(r"(?i)^(https?://)[^/?#]*@")
# A parameter (query, `;` matrix or fragment pair) and its value, which runs to the next separator, less
# the backslashes escaping it; `redact_urls` masks the value when the name looks secret (`secret_parameter`).
_PARAMETER = re.compile(r"([?&;#]\\*)([^=&;#?\\]*)(\\*=)((?:[^&;#\\]|\\+(?![\\&;#]))*)")


def redact_urls(text: str) -> str:
    """`text` with every http(s) URL's userinfo dropped and its secret-looking parameters' values masked,
    in the query and in the fragment alike (`#access_token=...`).

    Used on every line the product prints about an endpoint and on every trajectory line.
    """
    def public(match: re.Match[str]) -> str:
        url = _USERINFO.sub(r"\1", match.group(0), count=1)
        return _PARAMETER.sub(masked, url)

    def masked(match: re.Match[str]) -> str:
        separator, name, equals, value = match.groups()
        secret = value and secret_parameter(unquote(name))
        return separator + name + equals + (MASK if secret else value)

    return _URL_IN_TEXT.sub(public, text)


def url_secrets(url: str) -> list[str]:
    """The credentials inside `url`: userinfo and secret-looking query and fragment values, raw and percent-decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [parts.username or "", parts.password or ""]
    found += [value for pairs in (parts.query, parts.fragment)
              for name, value in parse_qsl(pairs, keep_blank_values=True) if secret_parameter(name)]
    found += [quote(value, safe="") for value in found]
    found += [unquote(value) for value in found]
    return [value for value in dict.fromkeys(found) if len(value) >= MIN_SECRET_CHARS]


# A variable whose value is one URL (`OPENAI_BASE_URL`, `HTTPS_PROXY`, `AGENT_*`): its credentials are secrets.
_URL_VALUE = re.compile(r"(?i)\s*[a-z][a-z0-9+.-]*://\S+\s*$")


def environment_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """The values of `env`'s (default: this process's) secret-named variables (`SECRET_VARIABLE`: the run's
    own credentials of 8 characters or more, any other one when `looks_secret`) and the credentials in any
    variable's URL (`OPENAI_BASE_URL=http://user:pass@host/v1`, a proxy's): known to `scrub` from the
    start, whether or not the settings were read (`hold` adds those)."""
    env = os.environ if env is None else env
    named = [value for name, value in env.items() if SECRET_VARIABLE.search(name) and (
        looks_secret(value) if name.upper() not in RUN_CREDENTIALS else len(value.strip()) >= MIN_ENVIRONMENT_SECRET_CHARS)]
    return named + [secret for value in env.values() if _URL_VALUE.match(value) for secret in url_secrets(value)]


_HELD: set[str] = set()
_SCRUBBERS: dict[frozenset[str], Redactor] = {}


@dataclass(frozen=True)
class _Built:
    """The scrubber `_scrubber` last built and what it was built from: a copy of the environment's
    raw mapping (`os.environ._data`, bytes on POSIX) and of the held secrets."""

    environment: dict[Any, Any]
    held: frozenset[str]
    redactor: Redactor


_LAST: _Built | None = None


def hold(secrets: Iterable[str | None]) -> None:
    """Note secrets this process obtained (a config's key, a `gh` token): `scrub` masks them from now on."""
    _HELD.update(s for s in secrets if s and len(s) >= MIN_SECRET_CHARS)


def held_secrets() -> frozenset[str]:
    """Every secret this process holds: its environment's and those it was given (`hold`)."""
    return frozenset(_HELD.union(environment_secrets()))


def scrub(text: str) -> str:
    """`text` with every secret this process holds masked, escaped forms included, and URL credentials dropped."""
    return _scrubber()(text)


def reveals_secret(text: str) -> bool:
    """Whether `text` holds one of this process's secrets (`held_secrets`), escaped or not."""
    return _scrubber().finds(text)


def _scrubber() -> Redactor:
    """The `Redactor` for every secret held now. Reading the environment's secrets costs two regexes
    per variable (about 100x a short line's scrub), and the trajectory scrubs every string of every
    event, so it is rebuilt only when the environment's contents or the held secrets changed since
    the last call: comparing both (C-level dict and set equality) costs about a microsecond."""
    global _LAST
    environment = _raw_environment()
    last = _LAST
    if last is not None and last.environment == environment and last.held == _HELD:
        return last.redactor
    snapshot, held = dict(environment), frozenset(_HELD)  # copied before reading: a change later is seen
    secrets = frozenset(held.union(environment_secrets()))
    if secrets not in _SCRUBBERS:
        _SCRUBBERS.clear()
        _SCRUBBERS[secrets] = Redactor(secrets)
    _LAST = _Built(snapshot, held, _SCRUBBERS[secrets])
    return _LAST.redactor


def _raw_environment() -> Mapping[Any, Any]:
    """`os.environ`'s contents as cheaply as they can be compared: its underlying dict of encoded
    names and values (CPython's `os._Environ._data`), which every change through `os.environ`
    (`monkeypatch.setenv` included) updates; the decoded mapping where that is missing."""
    return getattr(os.environ, "_data", os.environ)


def _escaped_forms(secret: str) -> str:
    """A pattern for `secret` as written or as escaping or encoding left it, however many times: any run
    of backslashes before a character that is not an ASCII letter or digit (Markdown, JSON, JSON inside
    JSON), any character as a `\\uXXXX`, `\\u{...}` or `\\xXX` escape or percent-encoded
    (`_char_forms`). Invisible characters between its characters are not in the pattern: `Redactor`
    matches on the text without them (`_without_ignorables`). The patch policy's `secret` check uses
    the same matching (`reveals_secret`)."""
    return "".join(map(_char_forms, secret))


def _char_forms(char: str) -> str:
    """One character as written, escaped or encoded: JSON and JavaScript escape any character, letters and
    digits included (`sk-\\u0053ECRET` is `sk-SECRET` to every reader), so every character has its `\\uXXXX`
    form (UTF-16 units, any hex case, as JSON writes one past the BMP), JavaScript's `\\u{...}` and,
    below U+0100, the `\\xXX` of JavaScript, Python and C strings; and its percent-encoding (RFC 3986
    section 2.1: the UTF-8 bytes as `%XX`, either hex case, `%25XX` when encoded twice; a space also as
    the `+` of form encoding, WHATWG URL's application/x-www-form-urlencoded)."""
    encoded = char.encode("utf-16-be", "surrogatepass")  # an environment's undecodable bytes
    units = [int.from_bytes(encoded[i:i + 2], "big") for i in range(0, len(encoded), 2)]
    escaped = ["".join(r"\\+u" + _hex(f"{unit:04x}") for unit in units), r"\\+u\{0*" + _hex(f"{ord(char):x}") + r"\}",
               "".join("%(?:25)*" + _hex(f"{byte:02x}") for byte in char.encode("utf-8", "surrogatepass"))]
    if ord(char) < 0x100:
        escaped.append(r"\\+x" + _hex(f"{ord(char):02x}"))
    if char == " ":
        escaped.append(r"\+")
    plain = re.escape(char) if char.isascii() and char.isalnum() else f"\\\\*{re.escape(char)}"
    return f"(?:{plain}|{'|'.join(escaped)})"


def _hex(digits: str) -> str:
    """A pattern for hex `digits` in either case."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in digits)


# Unicode's default-ignorable code points: Default_Ignorable_Code_Point of DerivedCoreProperties.txt
# (Unicode 15.1, unicode.org/Public/15.1.0/ucd/DerivedCoreProperties.txt; UAX #44 section 5.3, and the
# Unicode Standard section 5.21: rendered as nothing when not supported). It holds every bidi control
# (Bidi_Control of PropList.txt: U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069), the invisible format
# characters (soft hyphen, zero-width space/joiners, word joiner, BOM, invisible operators, U+180E), the
# variation selectors, the combining grapheme joiner, the Hangul fillers, the tags and their reserved
# neighbours. Inclusive ranges; checked against the `regex` module's `\p{Default_Ignorable_Code_Point}`.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)


def _ignorable_pattern() -> str:
    """One default-ignorable code point, raw or escaped as `_char_forms` reads escapes (`\\u00ad`, a
    surrogate pair `\\udb40\\udc41`, `\\u{e0041}`, `\\xad`), as one compact pattern: the escapes' hex
    digits as a trie whose identical branches share a character class (4096 tags in a few dozen bytes)."""
    codes = [code for low, high in DEFAULT_IGNORABLE for code in range(low, high + 1)]
    raw = "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}" for low, high in DEFAULT_IGNORABLE)
    units = []
    for code in codes:
        encoded = chr(code).encode("utf-16-be")
        units.append("u".join(encoded[i:i + 2].hex() for i in range(0, len(encoded), 2)))
    return (f"[{raw}]|\\\\+u{_trie(units)}|\\\\+u\\{{0*{_trie(f'{code:x}' for code in codes)}\\}}"
            f"|\\\\+x{_trie(f'{code:02x}' for code in codes if code < 0x100)}")


def _trie(words: Iterable[str]) -> str:
    """A pattern matching exactly `words` (hex digits, either case, and `u` for a further `\\u` escape)."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
    return _branches(root)


def _branches(node: dict[str, Any]) -> str:
    """The pattern of a `_trie` node: children with the same pattern below share one character class."""
    shared: dict[str, list[str]] = {}
    for char, child in node.items():
        shared.setdefault(_branches(child), []).append(char)
    options = [(r"\\+u" if chars == ["u"] else "[" + "".join(sorted({c for d in chars for c in (d.lower(), d.upper())})) + "]")
               + below for below, chars in shared.items()]
    return "" if not options else options[0] if len(options) == 1 else f"(?:{'|'.join(options)})"


# A run of invisible characters, raw or escaped. Matched apart from the secrets: written between every two
# characters of every secret's pattern it made compiling a few secrets' scrubber take over half a second.
_IGNORABLE_RUN = re.compile(f"(?:{_ignorable_pattern()})+")


@dataclass(frozen=True)
class _Seen:
    """A text without its runs of invisible characters (`text`), and where each kept piece starts in the
    text and in the original (`starts`, `origins`: character offsets, ascending), to map a match back."""

    text: str
    starts: list[int]
    origins: list[int]

    def origin(self, offset: int) -> int:
        """Where the character at `offset` of `text` is in the original."""
        piece = bisect_right(self.starts, offset) - 1
        return self.origins[piece] + offset - self.starts[piece]


def _without_ignorables(text: str) -> _Seen | None:
    """`text` as a reader sees it, with every run of default-ignorable code points (raw or escaped) left out;
    None when it has none (the common case, for which the original is matched directly: ASCII text without
    a backslash cannot hold one, and saying so costs two C-level scans, not a regex's)."""
    if text.isascii() and "\\" not in text:
        return None
    pieces, starts, origins, position, length = [], [], [], 0, 0
    for run in _IGNORABLE_RUN.finditer(text):
        if run.start() > position:
            pieces.append(text[position:run.start()])
            starts.append(length)
            origins.append(position)
            length += run.start() - position
        position = run.end()
    if not origins and position == 0:
        return None
    if position < len(text):
        pieces.append(text[position:])
        starts.append(length)
        origins.append(position)
    return _Seen("".join(pieces), starts, origins)
MIN_BASE64_CHARS = 8  # a shorter run of base64 would mask ordinary words


def _base64_forms(secret: str) -> list[str]:
    """`secret`'s UTF-8 bytes as base64 (RFC 4648 section 4, and section 5's URL-safe alphabet) at each of the
    three alignments it can have inside longer data (`Authorization: Basic base64(user:pass)`, a Kubernetes
    Secret's `data`, `.docker/config.json`'s `auth`): only the characters its own bits fill, so the
    neighbouring bytes and padding do not matter; none shorter than `MIN_BASE64_CHARS`."""
    data = secret.encode("utf-8", "surrogatepass")
    forms = []
    for offset in range(3):
        text = base64.b64encode(bytes(offset) + data).decode()
        start, end = -(-offset * 8 // 6), (offset + len(data)) * 8 // 6  # first and past-last filled character
        for core in (text[start:end], text[start:end].translate(str.maketrans("+/", "-_"))):
            if len(core) >= MIN_BASE64_CHARS:
                forms.append(core)
    return list(dict.fromkeys(forms))


def scrub_record(value: Any, clean: Callable[[str], str] = scrub) -> Any:
    """`value` (JSON-shaped: dicts, lists, strings, numbers) with `clean` (default: `scrub`) applied to
    every string in it, keys too, before it is serialised, so no escaping the serialiser adds can
    hide a secret. A string that is itself JSON (a tool call's `arguments`) is decoded and walked
    too, and written back (non-ASCII kept) only when that changed something."""
    if isinstance(value, str):
        if value.lstrip()[:1] in ("{", "[") and '"' in value:
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = None
            if isinstance(decoded, (dict, list)) and (cleaned := scrub_record(decoded, clean)) != decoded:
                return json.dumps(cleaned, ensure_ascii=False)
        return clean(value)
    if isinstance(value, dict):
        return {scrub_record(key, clean) if isinstance(key, str) else key: scrub_record(item, clean)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_record(item, clean) for item in value]
    return value


class Redactor:
    """Replaces each known secret in text with `***`, longest first (one secret may contain another),
    in its escaped forms too (`_escaped_forms`); then drops URL credentials (`redact_urls`)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        encoded = [re.escape(form).replace("/", r"\\*/") for secret in self.secrets for form in _base64_forms(secret)]
        forms = [_escaped_forms(secret) for secret in self.secrets] + sorted(encoded, key=len, reverse=True)
        self._pattern = re.compile("|".join(forms)) if forms else None

    def finds(self, text: str) -> bool:
        """Whether `text` holds one of the secrets, invisible characters between its characters or not."""
        if self._pattern is None:
            return False
        seen = _without_ignorables(text)
        return self._pattern.search(text if seen is None else seen.text) is not None

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            seen = _without_ignorables(text)
            text = self._pattern.sub(MASK, text) if seen is None else self._masked(text, seen)
        return redact_urls(text)

    def _masked(self, text: str, seen: _Seen) -> str:
        """`text` with each secret found in `seen` (the text without invisible characters) masked, from its
        first character to its last in the original: the invisible characters inside go with it."""
        assert self._pattern is not None
        pieces, position = [], 0
        for found in self._pattern.finditer(seen.text):
            if found.end() == found.start():
                continue
            start, end = seen.origin(found.start()), seen.origin(found.end() - 1) + 1
            pieces += [text[position:start], MASK]
            position = end
        return "".join(pieces) + text[position:] if pieces else text
