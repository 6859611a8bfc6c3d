"""Reading the GitHub Actions event: which issue, who asked, and the issue's text as it was then.

The event file is written when the event happens. Its issue title and body are what the
person who labelled or commented saw; reading the issue again when the job runs would
take whatever its author wrote in between, after the permission check. So the run uses
the event's copy of the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import UsageError
from agent.github import Issue, IssueRef

_COMMAND = re.compile(r"\s*/agent[ \t]+fix(?![\w-])[ \t]*(?P<rest>.*)", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Trigger:
    """A run an event asks for; `issue` holds the text as of the event (None: read it from the API)."""

    ref: IssueRef
    actor: str  # who labelled or commented: the one whose write access counts
    instructions: str = ""  # text after `/agent fix`, appended to the task
    issue: Issue | None = None


def parse_command(comment: str) -> str | None:
    """The instructions after a leading `/agent fix`, '' if none; None when it is no command."""
    found = _COMMAND.match(comment)
    return found["rest"].strip() if found else None


def read_trigger(env: Mapping[str, str], label: str) -> Trigger | str:
    """The run this Actions event asks for, or a one-line reason why it asks for none."""
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        raise UsageError("GITHUB_EVENT_PATH is not set: 'agent ci' runs inside a GitHub Actions job "
                         "(on your machine, use 'agent pr --issue OWNER/REPO#N')")
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the event file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"the event file {path} is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise UsageError(f"the event file {path} holds no JSON object")
    return trigger_from_event(env.get("GITHUB_EVENT_NAME", ""), payload, env.get("GITHUB_REPOSITORY"), label)


def trigger_from_event(name: str, payload: dict[str, Any], repository: str | None, label: str) -> Trigger | str:
    """The run an event of type `name` asks for (payload as GitHub documents it), or why none."""
    if name not in ("issues", "issue_comment"):
        return f"nothing to do: 'agent ci' acts on issues and issue_comment events, not {name or 'this one'}"
    issue, action = payload.get("issue"), payload.get("action")
    if not isinstance(issue, dict) or not isinstance(issue.get("number"), int):
        raise UsageError(f"the {name} event has no issue number in it")
    number = issue["number"]
    if issue.get("pull_request"):
        return f"nothing to do: #{number} is a pull request, not an issue"
    if issue.get("state") == "closed":
        return f"nothing to do: issue #{number} is closed"
    if name == "issues":
        if action != "labeled":
            return f"nothing to do for an issue being {action}"
        added = (payload.get("label") or {}).get("name")
        if added != label:
            return f"nothing to do: issue #{number} was labelled {added!r}, not {label!r}"
        actor, instructions = _login(payload.get("sender")), ""
    else:
        if action != "created":
            return f"nothing to do for a comment being {action}"
        comment = payload.get("comment") or {}
        command = parse_command(comment.get("body") or "")
        if command is None:
            return f"nothing to do: the comment on #{number} is not an '/agent fix' command"
        actor, instructions = _login(comment.get("user")), command
    full_name = repository or (payload.get("repository") or {}).get("full_name") or ""
    owner, _, repo = full_name.partition("/")
    if not owner or not repo:
        raise UsageError("GITHUB_REPOSITORY is not set and the event names no repository")
    ref = IssueRef(owner, repo, number)
    return Trigger(ref, actor, instructions, _issue_as_of_event(ref, issue))


def _issue_as_of_event(ref: IssueRef, issue: dict[str, Any]) -> Issue | None:
    """The issue's text from the event; None when the event lacks it (then it is read, as before)."""
    title = issue.get("title")
    if not isinstance(title, str):
        return None
    body = issue.get("body")
    return Issue(ref=ref, title=title, body=body if isinstance(body, str) else "",
                 state=str(issue.get("state") or "open"), url=str(issue.get("html_url") or ""))


def _login(user: Any) -> str:
    if not isinstance(user, dict) or not user.get("login"):
        raise UsageError("the event does not say who triggered it")
    return user["login"]
