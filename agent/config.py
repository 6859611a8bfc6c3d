"""Settings: every knob in one validated tree, read from flags, environment and TOML files.

Precedence, highest first: command-line overrides > environment > user config file >
the repository's `.agent.toml` > defaults. Layers are deep-merged, so a repo file can
set `model.temperature` without restating `model.base_url`. Validation happens once on
the merged tree, and each problem is reported against the layer that supplied the value.

Trust: flags, environment and the user file are the user's own; a repository's
`.agent.toml` comes with code cloned from anywhere. `WHO_MAY_SET` says which keys a
repository may set; any other key it sets is dropped with one warning line, and the
files it names (prompts, Dockerfile) must lie inside the repository. Its `model.extra_body`
keeps only sampling knobs (`REPO_EXTRA_BODY`), and its limits may only narrow the user's
(`REPO_LIMITS`: capped at the defaults, with one warning line).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import (
    BaseModel, ConfigDict, Field, FilePath, PrivateAttr, SecretStr, ValidationError, ValidationInfo,
    field_validator, model_validator,
)

from agent.errors import UsageError
from agent.profiles import PROFILE_NAMES
from agent.redaction import hold, public_url, url_secrets
from agent.repo_files import OUTSIDE, refusal, snapshot_refusal

REPO_CONFIG_NAME = ".agent.toml"
TEMPLATE_SUFFIXES = (".md", ".txt", ".j2", ".jinja", ".jinja2")

# Environment variables we read, and where each lands in the settings tree.
ENV_VARS: dict[str, tuple[str, str]] = {
    "OPENAI_BASE_URL": ("model", "base_url"),
    "OPENAI_API_KEY": ("model", "api_key"),
    "AGENT_MODEL": ("model", "name"),
    "AGENT_CA_BUNDLE": ("sandbox", "ca_bundle"),
}
# Keys holding host paths: relative values in a config file are relative to that file.
_FILE_PATH_KEYS = (("sandbox", "ca_bundle"), ("sandbox", "dockerfile"), ("paths", "runs_dir"))
_TEMPLATE_KEYS = (("prompts", "system"), ("prompts", "task"), ("prompts", "format_error"))

Source = Literal["repo", "user"]
# Who may set each key. The user's own sources (flags, environment, user config file) may
# set every key; a repository's `.agent.toml` only those marked "repo": what the project
# needs to be worked on. "user" keys reach the user's secrets, network, host files or
# bill: endpoints (they receive the API key and the code), keys, CA bundle, network,
# image, host resources, runs dir, capabilities, the sandbox user, the patch policy, and
# the model's name (a proxy serving several models bills by it).
# A key missing here is "user": new keys are closed to repositories until classified.
WHO_MAY_SET: dict[str, Source] = {
    "model.base_url": "user", "model.base_urls": "user", "model.api_key": "user", "model.max_concurrency": "user",
    "model.prices": "user", "model.name": "user",  # behind a proxy serving several, the name picks the bill
    "model.profile": "repo", "model.temperature": "repo", "model.top_p": "repo",
    "model.max_tokens": "repo", "model.request_timeout": "repo", "model.retries": "repo",
    "model.retry_backoff_base": "repo", "model.retry_backoff_max": "repo", "model.tool_format": "repo",
    "model.extra_body": "repo",  # from a repository, only the keys REPO_EXTRA_BODY lists
    "model.context_window": "repo",
    "sandbox.image": "user", "sandbox.cpus": "user", "sandbox.memory": "user", "sandbox.pids_limit": "user",
    "sandbox.network": "user", "sandbox.ca_bundle": "user", "sandbox.capabilities": "user", "sandbox.user": "user",
    "sandbox.workdir": "repo", "sandbox.setup": "repo", "sandbox.test_cmd": "repo", "sandbox.dockerfile": "repo",
    "loop.step_limit": "repo", "loop.token_limit": "repo", "loop.time_limit": "repo", "loop.cost_limit": "repo",
    "loop.max_format_errors": "repo", "loop.observation_max_chars": "repo", "loop.command_timeout": "repo",
    "loop.command_timeout_max": "repo",
    "tools.enabled": "repo",
    "prompts.system": "repo", "prompts.task": "repo", "prompts.format_error": "repo",
    "paths.runs_dir": "user",
    "patch_policy.allow": "user",
}
# Request keys `extra_body` may not override (it is merged over the request): the agent's own
# protocol, and `n`/`best_of`, which would multiply what every request costs on the server.
EXTRA_BODY_RESERVED = frozenset({"model", "messages", "tools", "tool_choice", "functions", "function_call",
                                 "stream", "stream_options", "n", "best_of"})
# What a repository's `.agent.toml` may put in `model.extra_body`: sampling knobs that shape a reply but
# cannot multiply what a request costs (no other replies, beams, log-probabilities, longer replies or a
# larger context): those the profiles use (agent/profiles.py: temperature, top_p, top_k, min_p,
# repetition_penalty), the other usual penalties and cut-offs, the seed and stop strings, and whether a
# hybrid model thinks. Each with the shape a server takes for it; every other key (`n_cmpl`, `n_probs`,
# `num_return_sequences`, `use_beam_search`, `logprobs`, `prompt_logprobs`, `options.num_predict`,
# `max_tokens`: a repository sets the reply bound through `model.max_tokens`, which is capped) or shape is
# ignored with the warning line of the other user-only keys. The user's own extra_body is not filtered.
_NUMBER, _INTEGER, _STOP, _SWITCH = "a number", "an integer", "a string or a list of strings", "true or false"
REPO_EXTRA_BODY: dict[str, str] = {
    "temperature": _NUMBER, "top_p": _NUMBER, "top_k": _INTEGER, "min_p": _NUMBER, "typical_p": _NUMBER,
    "repetition_penalty": _NUMBER, "presence_penalty": _NUMBER, "frequency_penalty": _NUMBER, "seed": _INTEGER,
    "stop": _STOP, "chat_template_kwargs.enable_thinking": _SWITCH,
}
# Numbers a repository may set where more means more cost, time or tokens: from a repository they may only
# narrow what the user allows. The user's own sources beat the repository's for every key, so a repository's
# value is in effect only where the user left the default: a value above that default is capped at it, with
# one warning line naming each key. `model.context_window` and `model.max_tokens` default to what the server
# serves and the profile's bound, known only once the server is asked: the model client caps them
# (agent/model.py). `token_limit`, `time_limit` and `cost_limit` default to none: any number narrows them.
REPO_LIMITS = ("model.max_tokens", "model.context_window", "model.request_timeout", "model.retries",
               "model.retry_backoff_base", "model.retry_backoff_max", "loop.step_limit", "loop.token_limit",
               "loop.time_limit", "loop.cost_limit", "loop.max_format_errors", "loop.observation_max_chars",
               "loop.command_timeout_max", "loop.command_timeout")  # the bound of REPO_LIMIT_WITHIN first
# A limit bounded by another, not by its default: a command's timeout when the model names none lies within
# the longest one it may name, so a repository's is capped at that (the user's, or the default).
REPO_LIMIT_WITHIN = {"loop.command_timeout": "loop.command_timeout_max"}
# Numbers a repository may set that are no limit: sampling, which changes what a reply says, not what it costs.
REPO_NUMBERS_NOT_LIMITS = ("model.temperature", "model.top_p")
# Keys saying one thing two ways: the one from the stronger source wins, the other is dropped.
ALTERNATIVES = ((("model", "base_url"), ("model", "base_urls")),)
# Kinds of change the patch policy refuses for `ci`/`pr` unless allowed (see agent/patch_policy.py).
PatchKind = Literal["ci_config", "tool_config", "agent_config", "submodules", "symlink_outside", "executable",
                    "ignore_rules"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Which source set each key of this section (`load_settings` fills them): a file's path, `$VAR`,
    # "command line"; keys absent are the defaults'. `_repository`: the keys the repository's file set.
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _repository: frozenset[str] = PrivateAttr(default_factory=frozenset)

    def source_of(self, key: str) -> str:
        """Where this section's `key` came from, for warning lines: a file's path, `$VAR`, "command line" or
        "defaults"."""
        return self._sources.get(key, "defaults")

    def from_repository(self, key: str) -> bool:
        """Whether the repository's `.agent.toml` set `key`: such a value may only narrow a limit (REPO_LIMITS)."""
        return key in self._repository


class ModelPrices(_Section):
    """Price per one million tokens; only used to report and cap cost."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class ModelSettings(_Section):
    """How to reach the model server and how to sample from it.

    Sampling fields left at None take the profile's recommended values.
    """

    base_url: str = "http://127.0.0.1:8000/v1"
    # Several servers of the same model: conversations are dealt round-robin; replaces base_url.
    base_urls: list[str] = Field(default_factory=list)
    # Requests in flight per endpoint, across every worker of a run (None: no client-side limit),
    # so a vLLM/SGLang server is kept busy without queueing past its KV cache.
    max_concurrency: int | None = Field(None, gt=0)
    api_key: SecretStr | None = None  # local vLLM/SGLang servers usually need none
    name: str = "Qwen/Qwen3-Coder-30B-A3B-Instruct"
    profile: str = "auto"  # "auto" picks a profile by model name
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, gt=0)
    request_timeout: float = Field(600.0, gt=0)
    retries: int = Field(3, ge=0, le=20)
    retry_backoff_base: float = Field(1.0, ge=0)
    retry_backoff_max: float = Field(30.0, ge=0)
    tool_format: Literal["auto", "native", "hermes", "xml"] = "auto"
    # Sent as-is at the top level of the request: top_k, repetition_penalty, chat_template_kwargs...
    extra_body: dict[str, Any] = Field(default_factory=dict)
    context_window: int | None = Field(None, gt=0)
    prices: ModelPrices | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = urlparse(value)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError("should be an http(s) URL such as http://127.0.0.1:8000/v1")
        return value

    @field_validator("api_key")
    @classmethod
    def _header_safe_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (problem := header_value_problem(value.get_secret_value())):
            raise ValueError(f"{problem} (it is sent in the Authorization header; the value is not shown)")
        return value

    @field_validator("base_urls")
    @classmethod
    def _http_urls(cls, values: list[str]) -> list[str]:
        for value in values:
            url = urlparse(value)
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ValueError(f"{public_url(value)!r} should be an http(s) URL such as http://127.0.0.1:8000/v1")
        if len(set(values)) < len(values):
            raise ValueError("lists an endpoint twice")
        return values

    @field_validator("extra_body")
    @classmethod
    def _no_protocol_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        taken = sorted(EXTRA_BODY_RESERVED & value.keys())
        if taken:
            raise ValueError(f"may not set {', '.join(taken)}: the agent sets "
                             f"{'them' if len(taken) > 1 else 'it'} (one reply per request, no streaming)")
        return value

    @property
    def endpoints(self) -> list[str]:
        """Every server to send requests to: base_urls when set, else base_url."""
        return list(self.base_urls) or [self.base_url]

    @field_validator("name")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("should name the model as the server serves it")
        return value

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value != "auto" and value not in PROFILE_NAMES:
            raise ValueError(f"unknown profile {value!r}; choose one of: auto, {', '.join(PROFILE_NAMES)}")
        return value


class SandboxSettings(_Section):
    """The container each task runs in."""

    image: str | None = None  # None: the default image `agent sandbox build` makes
    workdir: str = "/testbed"
    cpus: float = Field(2.0, gt=0)
    memory: str = "4g"
    pids_limit: int = Field(1024, gt=0)
    # /tmp and /var/tmp are tmpfs of this size (charged to `memory`); "" keeps the image's own /tmp.
    tmp_size: str = "1g"
    # What the sandbox may write to its own files (outside /tmp): enforced by the engine where it can
    # (overlay2 on xfs with pquota), else measured after and during each command (sandbox.disk).
    disk_size: str = "4g"
    network: bool = False
    ca_bundle: FilePath | None = None  # extra CA bundle for TLS-intercepting proxies
    # Linux capabilities added back to the container; every other one is dropped.
    capabilities: list[str] = Field(default_factory=list)
    # "auto": the image's own user; or "root", a name, "uid[:gid]".
    user: str = "auto"
    setup: list[str] = Field(default_factory=list)
    test_cmd: str | None = None
    dockerfile: FilePath | None = None

    @field_validator("ca_bundle", "dockerfile", mode="before")
    @classmethod
    def _expand_home(cls, value: Any) -> Any:
        return Path(value).expanduser() if isinstance(value, str) else value

    @field_validator("capabilities")
    @classmethod
    def _capability_names(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"(CAP_)?[A-Z_]+", value):
                raise ValueError(f"{value!r} is not a capability name such as NET_ADMIN")
        return [value.removeprefix("CAP_") for value in values]
    @field_validator("ca_bundle")
    @classmethod
    def _pem_bundle(cls, value: Path | None) -> Path | None:
        if value is not None:
            from sandbox.certs import bundle_problem

            problem = bundle_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("workdir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("should be an absolute path inside the container, such as /testbed")
        return value

    @field_validator("memory", "tmp_size", "disk_size")
    @classmethod
    def _docker_size(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name != "memory" and value == "":
            return value
        if not re.fullmatch(r"\d+([bkmg]b?)?", value, re.IGNORECASE):
            raise ValueError("should be a Docker memory size such as 4g or 512m")
        return value


class LoopSettings(_Section):
    """When the agent stops, and how much it may see and run per step."""

    step_limit: int = Field(100, ge=1)
    token_limit: int | None = Field(None, gt=0)  # prompt + completion tokens over the run
    time_limit: float | None = Field(None, gt=0)  # seconds
    cost_limit: float | None = Field(None, gt=0)
    max_format_errors: int = Field(3, ge=0)
    # The same calls with the same results this many times in a row: the model is told;
    # once more and the run ends with status `repeated_action` (0: never checked).
    repeat_limit: int = Field(3, ge=0)
    observation_max_chars: int = Field(10_000, gt=0)
    command_timeout: float = Field(120.0, gt=0)
    command_timeout_max: float = Field(1800.0, gt=0)

    @model_validator(mode="after")
    def _timeout_within_max(self) -> LoopSettings:
        if self.command_timeout > self.command_timeout_max:
            raise ValueError(
                f"command_timeout ({self.command_timeout:g}) is above command_timeout_max ({self.command_timeout_max:g})"
            )
        return self


class ToolSettings(_Section):
    enabled: list[str] | None = None  # None: every tool the agent has


class PromptSettings(_Section):
    """Overrides for the built-in prompt templates: the template text, or a path to it."""

    system: str | None = None
    task: str | None = None
    format_error: str | None = None

    @field_validator("system", "task", "format_error")
    @classmethod
    def _read_template_file(cls, value: str | None) -> str | None:
        if value is None or not names_template_file(value):
            return value
        path = Path(value).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read template file {path}: {getattr(exc, 'strerror', None) or exc}") from exc


class PathSettings(_Section):
    runs_dir: Path | None = None  # None: the default runs directory

    @field_validator("runs_dir", mode="before")
    @classmethod
    def _expand_home(cls, value: Any) -> Any:
        return Path(value).expanduser() if isinstance(value, str) else value


class PatchPolicySettings(_Section):
    """Which kinds of sensitive change `agent ci` and `agent pr` may push (user-only)."""

    allow: list[PatchKind] = Field(default_factory=list)


class Settings(_Section):
    model: ModelSettings = Field(default_factory=ModelSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    patch_policy: PatchPolicySettings = Field(default_factory=PatchPolicySettings)
    # Every `model.api_key`, `base_url` and `base_urls` entry the user's own sources gave, those a stronger
    # source replaced included (a config file's `base_urls` under `$OPENAI_BASE_URL`): not used, but the run
    # holds them, and a model that echoes them must find them masked too (`secrets`).
    _given_keys: list[str] = PrivateAttr(default_factory=list)
    _given_endpoints: list[str] = PrivateAttr(default_factory=list)

    def redacted(self) -> dict[str, Any]:
        """Plain data safe to store in a trajectory: no API key, endpoints without credentials."""
        data = self.model_dump(mode="json", exclude={"model": {"api_key"}})
        data["model"]["base_url"] = public_url(data["model"]["base_url"])
        data["model"]["base_urls"] = [public_url(url) for url in data["model"]["base_urls"]]
        return data

    def configured_endpoints(self) -> list[str]:
        """Every endpoint URL the user's sources named, those in use first, those a stronger source replaced after."""
        return list(dict.fromkeys([*self.model.endpoints, *self._given_endpoints]))

    def secrets(self) -> list[str]:
        """What no file we write and nothing we post may contain: every API key and every endpoint's URL
        credentials (userinfo, secret-looking parameters) the user's sources gave, replaced ones included."""
        found = [self.model.api_key.get_secret_value()] if self.model.api_key else []
        found += self._given_keys
        for url in dict.fromkeys([self.model.base_url, *self.configured_endpoints()]):
            found += url_secrets(url)
        return list(dict.fromkeys(secret for secret in found if secret))


def header_value_problem(value: str) -> str | None:
    """Why `value` cannot be sent as an HTTP header value (httpx encodes them as ASCII, RFC 9110
    allows no control characters), naming the kind and position of the first bad character, never
    the value itself; None when it can. Keys and tokens are checked with it before any request."""
    for position, char in enumerate(value, 1):
        if not " " <= char <= "~":
            kind = "a control character" if char.isascii() or not char.isprintable() else "a non-ASCII character"
            return f"holds {kind} at position {position}"
    return None


def names_template_file(value: str, base: Path | None = None) -> bool:
    """Whether a prompt value is a path to a template file rather than the template text.

    A one-line value is a path when it ends like a template file (`.md`, `.txt`, ...), looks like
    a path (`/`, `~`, `./`, `../`) or, in a config file (`base`: its folder), names an existing file
    there; anything else is template text. The config file's layer turns such a name into an
    absolute path (checked for a repository's file), so the settings' one reading of the file needs
    no `base`, and a repository's value taken for text here is never read as a file later
    (`~/.aws/credentials`, `/proc/self/environ`, or a name the current directory happens to hold).
    """
    if "\n" in value or "\0" in value or len(value) >= 4096:
        return False
    text = value.strip()
    if text.lower().endswith(TEMPLATE_SUFFIXES) or text.startswith(("/", "~", "./", "../", ".\\", "..\\")):
        return True
    if base is None:
        return False
    try:
        return (base / text).is_file()
    except OSError:  # a name too long for the file system is text
        return False


def user_config_path(env: Mapping[str, str]) -> tuple[Path, bool]:
    """The user config file, and whether the user named it explicitly (then it must exist)."""
    if env.get("AGENT_CONFIG"):
        return Path(env["AGENT_CONFIG"]).expanduser(), True
    xdg = env.get("XDG_CONFIG_HOME", "")  # the XDG spec: a relative path is invalid and ignored
    config_home = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return config_home / "moe-agent" / "config.toml", False


def load_settings(
    repo_root: Path | None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    user_file: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> Settings:
    """Merge every source and validate once; raise `UsageError` listing every bad value.

    `overrides` maps dotted keys (`"model.temperature"`) or sections to values; None
    values mean "flag not given" and are skipped. What the repository's file may not
    set is dropped, and `warn` (default: stderr) gets one line naming the keys.
    """
    env = os.environ if env is None else env
    warn = warn or warn_on_stderr
    problems: list[str] = []
    layers: list[tuple[dict[str, Any], str]] = []  # lowest precedence first

    repo_file = repo_root / REPO_CONFIG_NAME if repo_root is not None else None
    repo_label = None
    if repo_file is not None and repo_file.is_file():
        refused = refusal(repo_file, repo_root)  # type: ignore[arg-type]
        if refused is None:
            repo_layer = _file_layer(repo_file, problems, repo_root=repo_root, warn=warn)
            layers += repo_layer
            repo_label = repo_layer[0][1] if repo_layer else None
        else:  # a link to a host file (or .git/config) would put its values in the prompt and the trajectory
            warn(f"{repo_file}: ignored: a symlink leading "
                 f"{'outside the repository' if refused == OUTSIDE else 'to ' + refused}")
    explicit = user_file is not None
    if user_file is None:
        user_file, explicit = user_config_path(env)
    if user_file.is_file():
        layers += _file_layer(user_file, problems)
    elif explicit:
        problems.append(f"{user_file}: config file not found")
    for var, key_path in ENV_VARS.items():
        if env.get(var):
            layers.append((_nest(key_path, env[var]), f"${var}"))
    for key, value in (overrides or {}).items():
        if value is not None:
            layers.append((_nest(tuple(key.split(".")), value), "command line"))

    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], tuple[int, str]] = {}
    for rank, (data, label) in enumerate(layers):
        _merge_into(merged, data, (rank, label), origins)
    _drop_weaker_alternatives(merged, origins)
    if repo_label is not None and (capped := _cap_repository_limits(merged, origins, repo_label)):
        warn(f"{repo_label}: capping {', '.join(capped)}: a repository's config may only lower a limit below "
             f"yours (set {'them' if len(capped) > 1 else 'it'} in your own config to raise "
             f"{'them' if len(capped) > 1 else 'it'}; see 'Security model' in the README)")
    from sandbox.certs import client_bundle_problem

    if problem := client_bundle_problem(env):  # the model client would fail on it with a traceback
        problems.append(problem)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        problems += [_describe(error, origins) for error in exc.errors()]
    if problems:
        raise UsageError("; ".join(problems))
    _note_sources(settings, origins, repo_label)
    _note_given_credentials(settings, [data for data, label in layers if label != repo_label])
    hold(settings.secrets())  # the user's keys and URL credentials: masked in everything written from now on
    return settings


def _cap_repository_limits(merged: dict[str, Any], origins: dict[tuple[str, ...], tuple[int, str]],
                           repo_label: str) -> list[str]:
    """Lower each REPO_LIMITS number the repository set above its default (or `REPO_LIMIT_WITHIN`'s bound) to
    that; return "key value -> cap" for each. Values of other types are left for validation to report."""
    capped: list[str] = []
    for dotted in REPO_LIMITS:
        section, key = dotted.split(".")
        if origins.get((section, key), (0, ""))[1] != repo_label:
            continue
        value = merged[section][key]
        default = _known_fields((section,))[key].default
        if dotted in REPO_LIMIT_WITHIN:
            outer_section, outer = REPO_LIMIT_WITHIN[dotted].split(".")
            default = merged.get(outer_section, {}).get(outer, _known_fields((outer_section,))[outer].default)
        if _number(value) and _number(default) and value > default:
            merged[section][key] = default
            capped.append(f"{dotted} {value:g} -> {default:g}")
    return capped


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _note_sources(settings: Settings, origins: dict[tuple[str, ...], tuple[int, str]], repo_label: str | None) -> None:
    """Tell each section where its keys came from (`_Section.source_of`, `from_repository`)."""
    for name in Settings.model_fields:
        section = getattr(settings, name)
        section._sources = {path[1]: label for path, (_, label) in origins.items() if len(path) == 2 and path[0] == name}
        section._repository = frozenset(key for key, label in section._sources.items() if label == repo_label)


def _note_given_credentials(settings: Settings, user_layers: list[dict[str, Any]]) -> None:
    """Keep every API key and endpoint the user's layers gave, in use or not, so that `secrets` masks them all."""
    for data in user_layers:
        model = data.get("model")
        if not isinstance(model, dict):
            continue
        if isinstance(model.get("api_key"), str):
            settings._given_keys.append(model["api_key"])
        urls = [model.get("base_url"), *(model.get("base_urls") if isinstance(model.get("base_urls"), list) else [])]
        settings._given_endpoints += [url for url in urls if isinstance(url, str)]


def warn_on_stderr(message: str) -> None:
    """One `warning:` line on stderr (shown with `--json` too), control characters made visible."""
    from agent.terminal import visible

    print(f"warning: {visible(message)}", file=sys.stderr)  # names keys and paths a repository chose


def _file_layer(path: Path, problems: list[str], repo_root: Path | None = None,
                warn: Callable[[str], None] = warn_on_stderr) -> list[tuple[dict[str, Any], str]]:
    """One TOML file as a layer; a repository's file (`repo_root` given) keeps only what it may set."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: invalid TOML: {exc}")
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}")
        return []
    refused = sorted(_drop_user_only_keys(data) + _keep_repo_extra_body(data)) if repo_root is not None else []
    problems += _drop_nul_paths(data, path)
    refused += _anchor_relative_paths(data, path.parent, inside=repo_root)
    if refused:
            warn(f"{path}: ignoring {', '.join(refused)}: a repository's config may not set "
                 f"{'these keys' if len(refused) > 1 else 'this key'} (see 'Security model' in the README)")
    return [(data, str(path))]


def _drop_nul_paths(data: dict[str, Any], source: Path) -> list[str]:
    """Remove every path key whose value holds a NUL byte (no OS path can); return one problem line each."""
    problems: list[str] = []
    for section, key in _FILE_PATH_KEYS + _TEMPLATE_KEYS:
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str) and "\0" in table[key]:
            del table[key]
            problems.append(f"{source}: {section}.{key}: a path may not contain a NUL byte")
    return problems


def _anchor_relative_paths(data: dict[str, Any], base: Path, inside: Path | None = None) -> list[str]:
    """Make relative paths in a config file relative to that file, not to the cwd.

    With `inside`, a path the host may not read for the repository (`agent.repo_files.refusal`:
    out of it by `..`, `~`, absolute or a symlink; into any `.git`; not a regular file; for a prompt
    file or a Dockerfile, also one git ignores: `agent.repo_files.snapshot_refusal`) is
    removed; the keys removed are returned as "key (why)".
    """
    removed: list[str] = []
    for section, key in _FILE_PATH_KEYS + _TEMPLATE_KEYS:
        table = data.get(section)
        value = table.get(key) if isinstance(table, dict) else None
        if not isinstance(value, str) or ((section, key) in _TEMPLATE_KEYS and not names_template_file(value, base)):
            continue
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = base / path
        # The prompt and the Dockerfile: snapshot files only (an ignored file is the user's, not the project's)
        check = snapshot_refusal if (section, key) in (*_TEMPLATE_KEYS, ("sandbox", "dockerfile")) else refusal
        if inside is not None and (refused := check(path, inside)) is not None:
            del table[key]  # e.g. a committed `p.txt -> .git/config`: the user's credentials in the prompt
            removed.append(f"{section}.{key} ({refused})")
            continue
        table[key] = str(path)
    return removed


def _drop_user_only_keys(data: dict[str, Any]) -> list[str]:
    """Remove from a repository's layer every key it may not set; return their dotted names."""
    dropped: list[str] = []
    for section, table in list(data.items()):
        if not isinstance(table, dict):
            if WHO_MAY_SET.get(section) != "repo":
                dropped.append(section)
                del data[section]
            continue
        for key in list(table):
            if WHO_MAY_SET.get(f"{section}.{key}", "user") != "repo" and _known_key(section, key):
                dropped.append(f"{section}.{key}")
                del table[key]
    return dropped


def _keep_repo_extra_body(data: dict[str, Any]) -> list[str]:
    """Remove from a repository's `model.extra_body` every key `REPO_EXTRA_BODY` does not list, or whose
    value has another shape; return their dotted names (with the shape wanted, for a listed key)."""
    model = data.get("model")
    body = model.get("extra_body") if isinstance(model, dict) else None
    return _keep_allowed(body, "") if isinstance(body, dict) else []  # validation reports any other shape


def _keep_allowed(table: dict[str, Any], prefix: str) -> list[str]:
    """Remove from `table` (the part of extra_body at `prefix`, "" or "chat_template_kwargs.") what
    `REPO_EXTRA_BODY` does not allow there; a table left empty goes too."""
    dropped: list[str] = []
    for key, value in list(table.items()):
        name, wanted = prefix + key, REPO_EXTRA_BODY.get(prefix + key)
        if wanted is None and isinstance(value, dict) and any(k.startswith(name + ".") for k in REPO_EXTRA_BODY):
            dropped += _keep_allowed(value, name + ".")
            if not value:
                del table[key]
        elif wanted is None or not _has_shape(value, wanted):
            dropped.append(f"model.extra_body.{name}" + (f" (not {wanted})" if wanted else ""))
            del table[key]
    return dropped


def _has_shape(value: Any, wanted: str) -> bool:
    """Whether `value` is what `wanted` (a `REPO_EXTRA_BODY` shape) says; a bool is no number."""
    if wanted == _SWITCH:
        return isinstance(value, bool)
    if wanted == _STOP:
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value))
    kinds = (int,) if wanted == _INTEGER else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool)


def _known_key(section: str, key: str) -> bool:
    """Unknown keys stay, so that validation reports them as typos."""
    return key in _known_keys((section,))


def _drop_weaker_alternatives(merged: dict[str, Any], origins: dict[tuple[str, ...], tuple[int, str]]) -> None:
    """Of two keys saying one thing (`base_url`, `base_urls`), keep the one from the stronger source."""
    for first, second in ALTERNATIVES:
        if first in origins and second in origins and origins[first][0] != origins[second][0]:
            weaker = min((first, second), key=lambda path: origins[path][0])
            merged[weaker[0]].pop(weaker[1], None)
            del origins[weaker]


def _nest(key_path: tuple[str, ...], value: Any) -> dict[str, Any]:
    for key in reversed(key_path):
        value = {key: value}
    return value


def _merge_into(
    base: dict[str, Any],
    layer: Mapping[str, Any],
    origin: tuple[int, str],
    origins: dict[tuple[str, ...], tuple[int, str]],
    prefix: tuple[str, ...] = (),
) -> None:
    for key, value in layer.items():
        path = (*prefix, key)
        if isinstance(value, Mapping) and (key not in base or isinstance(base[key], dict)):
            _merge_into(base.setdefault(key, {}), value, origin, origins, path)  # origins per leaf key
            origins.setdefault(path, origin)
        else:
            base[key] = value
            origins[path] = origin


def _describe(error: Any, origins: dict[tuple[str, ...], tuple[int, str]]) -> str:
    """One line: which source, which key, what is wrong with it."""
    loc = tuple(str(part) for part in error["loc"])
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
        close = difflib.get_close_matches(loc[-1], _known_keys(loc[:-1]), n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    return f"{_source_of(loc, origins)}: {key or 'settings'}: {message}"


def _source_of(loc: tuple[str, ...], origins: dict[tuple[str, ...], tuple[int, str]]) -> str:
    for end in range(len(loc), 0, -1):
        if loc[:end] in origins:
            return origins[loc[:end]][1]
    # A check over a whole section: blame the strongest layer that set anything in it.
    inside = [origin for path, origin in origins.items() if path[: len(loc)] == loc]
    return max(inside)[1] if inside else "defaults"


def _known_keys(section: tuple[str, ...]) -> list[str]:
    return list(_known_fields(section))


def _known_fields(section: tuple[str, ...]) -> dict[str, Any]:
    """The pydantic fields of the settings section at `section` (empty for no section)."""
    model: type[BaseModel] | None = Settings
    for part in section:
        field = model.model_fields.get(part) if model else None
        model = _model_in(field.annotation) if field else None
    return dict(model.model_fields) if model else {}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model inside `X` or `X | None`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next(filter(None, map(_model_in, typing.get_args(annotation))), None)
    return None
