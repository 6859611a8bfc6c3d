"""`bash`: one command in the sandbox's persistent shell, so `cd`, exports and venvs carry over."""

from __future__ import annotations

from typing import Any

from sandbox.output import cap_text
from tools.base import Observation, ToolContext, ToolError, ToolSpec
from tools.encoding import OUTPUT_NOTE, escape, has_raw_bytes

DESCRIPTION = """\
Run a bash command in the sandbox, starting at the repository root. The shell persists between calls: \
`cd`, exported variables and activated virtualenvs carry over. Stdin is closed, so do not start interactive \
programs (editors, pagers, REPLs, `git commit` without -m); use flags like `--no-pager` or `-y`. \
Long output is cut in the middle; pipe through `head`, `tail` or `grep` for what matters. \
Commands that run longer than `timeout` seconds are interrupted. Output with bytes that are not UTF-8 is \
shown escaped as a whole (a note says so); to copy a file's text into an edit, take it from the editor's view."""


class BashTool:
    spec = ToolSpec(
        name="bash",
        description=DESCRIPTION,
        parameters={
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The bash command to run."},
                "timeout": {"type": "number", "exclusiveMinimum": 0,
                            "description": "Seconds before the command is interrupted; optional."},
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    )

    def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Observation:
        command = args["command"]
        if not command.strip():
            raise ToolError("the command is empty; give a bash command to run, e.g. `ls`")
        asked = args.get("timeout")
        timeout = min(asked or ctx.command_timeout, ctx.max_command_timeout)
        result = ctx.sandbox.run(command, timeout=timeout)
        status = []
        if result.timed_out and not result.out_of_time:  # the deadline's own note says why
            status.append(f"[the command timed out after {timeout:g} s and was interrupted; run long jobs in the "
                          "background (`cmd > log 2>&1 &`) or pass a larger timeout]")
        if asked and asked > ctx.max_command_timeout:
            status.append(f"[the timeout was capped at the maximum of {ctx.max_command_timeout:g} s]")
        if result.truncated_bytes:
            status.append(f"[{result.truncated_bytes} bytes of output were cut from the middle]")
        if result.restarted and not any("restarted" in note for note in result.notes):
            status.append("[the shell was restarted: the working directory may have changed and exported "
                          "variables and activated environments were reset]")
        status.extend(f"[{note}]" for note in result.notes)
        status.append(f"[exit code: {result.exit_code if result.exit_code is not None else 'none'}]")
        escaped = has_raw_bytes(result.output)  # output is no file: its own bytes decide (tools/encoding.py)
        if escaped:
            status.append(f"[Note: {OUTPUT_NOTE}.]")
        output = result.output if result.output.strip() else "(no output)\n"
        budget = max(ctx.observation_max_chars - sum(len(s) + 1 for s in status), 200)
        capped = cap_text(output, budget)[0]
        text = (escape(capped) if escaped else capped).rstrip("\n") + "\n" + "\n".join(status)
        data = {"exit_code": result.exit_code, "timed_out": result.timed_out, "duration": round(result.duration, 3),
                "out_of_time": result.out_of_time}
        return Observation(text, is_error=False, data=data)


bash = BashTool()
