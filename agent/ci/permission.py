"""Deciding who may start the bot: people with write access to the repository, nobody else."""

from __future__ import annotations

from agent.ci.event import Trigger
from agent.github import GitHubClient


def authorize(github: GitHubClient, trigger: Trigger) -> str | None:
    """None when the actor may start a run; else why not, after saying so politely on the issue.

    Asks the permission API rather than trusting `author_association`: MEMBER and
    COLLABORATOR there do not imply write access to this repository. The issue's text
    the run uses is the event's copy (`agent/ci/event.py`), so its author cannot change
    it between this check and the run.
    """
    ref = trigger.ref
    allowed, role = github.can_write(ref.owner, ref.repo, trigger.actor)
    if allowed:
        return None
    github.comment(ref, f"Thanks @{trigger.actor}! moe-agent only starts for people with write access to this "
                        f"repository, so it did not run. A maintainer can start it on this issue for you.")
    return f"not running: @{trigger.actor} has {role} access to {ref.owner}/{ref.repo}, and write is needed"
