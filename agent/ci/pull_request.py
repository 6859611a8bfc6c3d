"""Writing the pull request and the issue comments: what changed, how it was tested, what it cost.

Issue titles, test names and error messages are untrusted text inside Markdown that
GitHub renders: a title can carry HTML, links, images that call home, `@mentions` that
ping people, or a backtick that closes a code span. `markdown_text` and `code_span`
make such text read as the characters it is. Both go through `agent.terminal.visible`
first, which masks every secret the process holds before escaping could split one
(`ghp_x` becomes `ghp\\_x`); the GitHub client scrubs again, escaped forms included.
"""

from __future__ import annotations

import re

from agent.fix import FixOutcome
from agent.github import Issue
from agent.loop import RunResult
from agent.terminal import visible, visible_line

SHOWN_TEST_FAILURES = 10
# Characters that mean something inside a line of GitHub Markdown, escaped with a backslash:
# emphasis, code, links and images, HTML and entities, tables, strikethrough, issue
# references, @mentions, and the `:` and `.` of autolinked URLs and www. addresses.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>#!|~:&@.])")


# Issue and pull request references (`#12`, `GH-12`, `.../issues/12`): GitHub links them in
# rendered text, escaped or not, and a closing keyword before one ("fixes #12") closes that
# issue when the commit or pull request is merged. A word joiner (U+2060, invisible) after
# the `#` keeps them text.
_REFERENCE = re.compile(r"(#|\bgh-|/issues/|/pull/)(?=\d)", re.IGNORECASE)


def unlinked(text: str) -> str:
    """`text` with no issue reference GitHub would link or act on (a closing keyword would close it)."""
    return _REFERENCE.sub("\\1\u2060", text)


def markdown_text(text: str) -> str:
    """`text` as literal inline Markdown: one line, every special character escaped, no live @mention
    or issue reference."""
    return unlinked(_MARKDOWN.sub(r"\\\1", visible_line(text)))  # secrets masked before escaping


def code_span(text: str) -> str:
    """`text` in an inline code span whose fence no backtick run inside it can close."""
    text = visible_line(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def pull_title(issue: Issue) -> str:
    """A plain-text title (GitHub does not render Markdown there): one line, controls shown.

    It is the commit's subject too, where "closes #3" in the issue's title would close
    issue 3 on merge: references in the title are unlinked.
    """
    return f"Fix #{issue.ref.number}: {unlinked(visible_line(issue.title))}"


def pull_request_body(issue: Issue, outcome: FixOutcome, diffstat: str) -> str:
    """What changed, which tests ran and how they went, what the run cost, and `Fixes #N`."""
    result = outcome.result
    return "\n".join([
        f"moe-agent's fix for #{issue.ref.number}, **{markdown_text(issue.title)}**. Review it like any contribution.",
        "", "### What changed", "", "```", (visible(diffstat) or "(no files)").replace("```", "`\u200b``"), "```",
        *sensitive_section(outcome),
        "", "### Tests", "", tests_line(result), *_failed_tests(result),
        "", "### Run", "", "| steps | tokens | time | prefix reuse |", "|---:|---:|---:|---:|",
        (f"| {result.steps} | {result.prompt_tokens:,} prompt + {result.completion_tokens:,} completion "
         f"| {result.elapsed:.0f} s | {_reuse(result)} |"),
        *attempts_section(outcome),
        "", f"Run `{outcome.run_id}`, status `{result.status}`.", *_instructions_line(outcome),
        "", f"Fixes #{issue.ref.number}",
    ])


def _instructions_line(outcome: FixOutcome) -> list[str]:
    used = outcome.instructions
    return ([f"Repository instructions: {markdown_text(used.summary())}."] if used and (used.files or used.skipped)
            else [])


def attempts_section(outcome: FixOutcome) -> list[str]:
    """With `--attempts`: what each attempt did, how the candidates fared in the checks, which won and why."""
    record = outcome.result.extra.get("selection")
    if not record:
        return []
    lines = ["", "### Attempts", "",
             f"{len(record['attempts'])} attempts; the patch above is candidate {record['winner']} of "
             f"{len(record['candidates'])}, chosen by **{record['decided_by']}**: {markdown_text(record['reason'])}.",
             "", "| candidate | attempts | applies | reproduction tests passed | tests broken | changed lines |",
             "|---:|---|---|---:|---:|---:|"]
    for candidate in record["candidates"]:
        applies = {True: "yes", False: "no", None: "not checked"}[candidate["applies"]]
        lines.append(f"| {candidate['candidate']} | {', '.join(map(str, candidate['attempts']))} | {applies} "
                     f"| {candidate['reproduced']} of {len(candidate['reproduction'])} | {len(candidate['broken'])} "
                     f"| {candidate['changed_lines']} |")
    ended = ", ".join(f"{a['attempt']}: {code_span(a['status'])}" for a in record["attempts"])
    return [*lines, "", f"How the attempts ended: {ended}."]


def sensitive_section(outcome: FixOutcome) -> list[str]:
    """The changes the patch policy flagged and the user's config allowed: always shown to reviewers."""
    findings = outcome.review.findings
    if not findings:
        return []
    return ["", "### Sensitive changes", "",
            "The user's patch policy allowed these; check them with care:", "",
            *[f"- {code_span(finding.path)}: {markdown_text(str(finding).removeprefix(finding.path + ': '))}"
              for finding in findings]]


def failure_comment(error: str, details_url: str | None) -> str:
    """Why there is no pull request; `error` must already be redacted (escaping hides secrets from a scrubber)."""
    details = f"\n\nThe job's log and the run's trajectory: {details_url}" if details_url else ""
    return f"moe-agent did not open a pull request: {markdown_text(error)}{details}"


def tests_line(result: RunResult) -> str:
    """One sentence on the last test run the agent made through its test tool, or that it made none."""
    tests = result.last_tests
    if not tests:
        return "The agent ran no test suite through its test tool: check the change by hand."
    failed = len(tests.get("failed", [])) + len(tests.get("errors", []))
    verdict = "passed" if not failed and tests.get("exit_code", 0) == 0 else "failed"
    return (f"Last test run {verdict}: {tests.get('passed', 0)} passed, {failed} failed, "
            f"{tests.get('skipped', 0)} skipped ({code_span(str(tests.get('command', '?')))}).")


def stats_line(result: RunResult) -> str:
    """What the run cost: steps, tokens, seconds, prefix-cache reuse."""
    return (f"{result.steps} steps, {result.prompt_tokens + result.completion_tokens:,} tokens, "
            f"{result.elapsed:.0f} s, prefix reuse {_reuse(result)}.")


def _failed_tests(result: RunResult) -> list[str]:
    tests = result.last_tests or {}
    names = [*tests.get("failed", []), *tests.get("errors", [])]
    shown = [f"- {code_span(str(name))}" for name in names[:SHOWN_TEST_FAILURES]]
    more = len(names) - SHOWN_TEST_FAILURES
    return shown + ([f"- and {more} more"] if more > 0 else [])


def _reuse(result: RunResult) -> str:
    return f"{result.prefix_reuse:.0%}" if result.prefix_reuse is not None else "-"
