"""The README's curl walkthrough, run exactly as written against the server,
printing exactly what the README says it prints.

The walkthrough is the ```sh block between the `curl-walkthrough:begin` and
`curl-walkthrough:end` markers. Its lines are run unchanged by bash, in order,
in one shell. A `# ` comment right under a command is that command's documented
output; a command with none must print nothing. `…` in a documented line
stands for any text. A documented JSON line must parse, and every member it
shows must be in the actual answer with that value (members the README does not
show may be there too: it documents what a reader relies on, not every field).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from conftest import Server

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- curl-walkthrough:begin"
END = "<!-- curl-walkthrough:end -->"
STEP_END = "@@e2e: end of step@@"
CONTINUES = ("\\", "|", "&&", "||")


@dataclass
class Step:
    """Lines to run, and the output documented under them."""

    code: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return bool(self.code) and not self.code[-1].rstrip().endswith(CONTINUES)


def walkthrough_block() -> list[str]:
    text = README.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "README: the walkthrough markers"
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    match = re.search(r"^```sh\n(.*?)^```$", section, re.S | re.M)
    assert match, "README: no ```sh block between the walkthrough markers"
    return match.group(1).splitlines()


def parse_steps(lines: list[str]) -> list[Step]:
    steps: list[Step] = []
    current = Step()
    for line in lines:
        stripped = line.strip()
        if not stripped:
            current = Step()
        elif stripped.startswith("# ") and current.complete:
            current.expected.append(stripped[2:])
        elif stripped.startswith("#"):
            continue  # an explanation of the commands that follow
        else:
            if current.expected or current.complete:
                current = Step()
            if not current.code:
                steps.append(current)
            current.code.append(line)
    return steps


def run_steps(steps: list[Step], env: dict[str, str]) -> tuple[list[str], subprocess.CompletedProcess]:
    script = ["set -euo pipefail"]
    for step in steps:
        script.extend(step.code)
        script.append(f"printf '\\n%s\\n' '{STEP_END}'")
    result = subprocess.run(
        ["bash", "-c", "\n".join(script) + "\n"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    outputs = result.stdout.split(f"\n{STEP_END}\n")
    return outputs[:-1], result


def printed_lines(output: str) -> list[str]:
    # Header lines from `curl -i` end in CRLF.
    return [line.rstrip() for line in output.strip("\n").splitlines()] if output.strip() else []


def pattern(documented: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in documented.split("…")), re.S)


def matches(documented: object, actual: object) -> bool:
    if isinstance(documented, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches(value, actual[key]) for key, value in documented.items()
        )
    if isinstance(documented, list):
        return (
            isinstance(actual, list)
            and len(documented) == len(actual)
            and all(matches(d, a) for d, a in zip(documented, actual))
        )
    if isinstance(documented, str):
        return isinstance(actual, str) and bool(pattern(documented).fullmatch(actual))
    return type(documented) is type(actual) and documented == actual


def line_matches(documented: str, actual: str) -> bool:
    try:
        documented_json = json.loads(documented)
    except ValueError:
        return bool(pattern(documented).fullmatch(actual))
    try:
        return matches(documented_json, json.loads(actual))
    except ValueError:
        return False


def test_the_walkthrough_parser_pairs_commands_with_their_documented_output() -> None:
    # The control for the test below: a step's output is the comment under it,
    # explanations above a command and continued lines are not.
    steps = parse_steps(
        [
            "# explain",
            "A=1",
            "curl a \\",
            "  -d b",
            "# {\"x\":1}",
            "",
            "curl c | grep d",
            "# d: e",
            "# f",
        ]
    )
    assert [(s.code, s.expected) for s in steps] == [
        (["A=1"], []),
        (["curl a \\", "  -d b"], ['{"x":1}']),
        (["curl c | grep d"], ["d: e", "f"]),
    ]
    assert line_matches('{"a":"eyJ…","n":1}', '{"a":"eyJhbG","n":1,"extra":true}')
    assert not line_matches('{"a":"eyJ…","n":1}', '{"a":"eyJhbG","n":2}')
    assert not line_matches('{"disabled":false}', '{"disabled":0}')
    assert line_matches('www-authenticate: Bearer realm="…"', 'www-authenticate: Bearer realm="x"')
    assert not line_matches("[1]", "[1,2]")


def test_readme_curl_walkthrough_runs_verbatim_and_prints_what_it_documents(
    server: Server,
) -> None:
    steps = parse_steps(walkthrough_block())
    documented = [s for s in steps if s.expected]
    # The walkthrough logs in, reads both routes, and shows three refusals.
    assert len(documented) >= 6, f"expected at least 6 documented outputs, found {len(documented)}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GATEHOUSE_URL": server.base_url,
        "DEMO_USER": server.username,
        "DEMO_PASSWORD": server.password,
    }

    outputs, result = run_steps(steps, env)

    ran = len(outputs)
    assert result.returncode == 0 and ran == len(steps), (
        f"the walkthrough stopped in step {ran + 1} of {len(steps)} "
        f"(exit status {result.returncode}):\n"
        + "\n".join(steps[min(ran, len(steps) - 1)].code)
        + f"\nstderr:\n{result.stderr}"
    )
    for step, output in zip(steps, outputs):
        printed = printed_lines(output)
        command = "\n".join(step.code)
        assert len(printed) == len(step.expected) and all(
            line_matches(d, a) for d, a in zip(step.expected, printed)
        ), f"\n{command}\nis documented to print\n{step.expected}\nbut printed\n{printed}"
