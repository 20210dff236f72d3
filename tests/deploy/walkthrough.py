"""The README's walk-through, read from the README and run as a reader would run it: each command
in bash, one after another (shell variables carry over), against another address; each output
compared with the README's, but for what differs from run to run or from database to database:
times, the ids the notifier hands out in arrival order, and the transaction and posting ids
PostgreSQL skips where SQLite does not (an insert refused as a repeat still takes a number). Those
must map one to one onto the README's, the same throughout the walk."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.deploy.kube import ROOT

README_ADDRESS = "http://localhost:8000"
COMMAND_STARTS = ("curl ", "TOKEN=", "BOB_TOKEN=", "microbank ")
TIMES = ("created_at", "timestamp", "completed_at")
SETTLE_SECONDS = 30.0


@dataclass
class Step:
    command: str
    expected: str | None


def steps(readme: Path = ROOT / "README.md", section: str = "## Walk-through") -> list[Step]:
    text = readme.read_text()
    start = text.index(f"\n{section}\n")
    end = text.find("\n## ", start + 1)
    blocks = re.findall(r"^```\n(.*?)^```", text[start : end if end > 0 else None], re.MULTILINE | re.DOTALL)
    found: list[Step] = []
    for block in blocks:
        if block.startswith(COMMAND_STARTS):
            found.append(Step(block.strip(), None))
        else:
            assert found and found[-1].expected is None, f"an output without its command: {block[:60]}"
            found[-1].expected = block.strip()
    return found


def normalised(output: str) -> list[Any]:
    """Each JSON document (curl -s ends none with a newline) with times blanked and a notification's
    id dropped; text that is not JSON, line by line."""
    decoder, items, rest = json.JSONDecoder(), [], output.strip()
    while rest:
        try:
            value, end = decoder.raw_decode(rest)
            items.append(_blank(value))
        except json.JSONDecodeError:
            line, _, _ = rest.partition("\n")
            items.append(line)
            end = len(line)
        rest = rest[end:].strip()
    return items


def _blank(value: Any) -> Any:
    if isinstance(value, list):
        return [_blank(v) for v in value]
    if not isinstance(value, dict):
        return value
    notification = "message" in value and "read" in value
    return {k: ("<time>" if k in TIMES else _blank(v)) for k, v in value.items() if not (notification and k == "id")}


def _kind_of(value: dict) -> str | None:
    if {"type", "amount", "status"} <= set(value):
        return "transaction"
    if {"transaction_id", "balance_after"} <= set(value) and "type" not in value:
        return "posting"
    return None


def align(got: Any, expected: Any, names: dict[str, dict[Any, Any]]) -> Any:
    """`got` with its transaction and posting ids renamed to the README's, where the renaming stays
    one to one over the whole walk; ids that do not map stay as they are (and fail to compare)."""
    if isinstance(got, list) and isinstance(expected, list) and len(got) == len(expected):
        return [align(g, e, names) for g, e in zip(got, expected, strict=True)]
    if not (isinstance(got, dict) and isinstance(expected, dict)):
        return got
    renamed = {}
    for key, value in got.items():
        kind = "transaction" if key == "transaction_id" else _kind_of(got) if key == "id" else None
        if kind and key in expected and value is not None:
            renamed[key] = _rename(names.setdefault(kind, {}), value, expected[key])
        else:
            renamed[key] = align(value, expected.get(key), names)
    return renamed


def _rename(names: dict[Any, Any], ours: Any, theirs: Any) -> Any:
    if ours not in names and theirs not in names.values():
        names[ours] = theirs
    return names.get(ours, ours)


class Reader:
    """Runs the steps in bash against `base_url`, with curl resolving the README's host there."""

    def __init__(self, base_url: str, workdir: Path, env: dict[str, str]) -> None:
        self.base_url = base_url
        self.workdir = workdir
        self.env = env
        self.variables: dict[str, str] = {}
        self.last_notifications: list[dict] = []
        self.names: dict[str, dict[Any, Any]] = {}

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        assigned = re.findall(r"^([A-Z_]+)=\$\(", command, re.MULTILINE)
        saves = "".join(f'\nprintf %s "${name}" > {self.workdir / name}' for name in assigned)
        script = "set -euo pipefail\n" + command.replace(README_ADDRESS, self.base_url) + saves
        result = subprocess.run(
            ["bash", "-c", script],
            env={**self.env, **self.variables},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.workdir,
        )
        for name in assigned:
            if result.returncode == 0:
                self.variables[name] = (self.workdir / name).read_text()
                assert self.variables[name], f"{name} came out empty"
        return result

    def follow(self, step: Step) -> tuple[Any, Any]:
        """Run one step; (what came out, what the README shows), both normalised. A listing the
        README shows whole is read again until it is whole (events arrive a moment later)."""
        command = self._with_this_runs_ids(step)
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            result = self.run(command)
            output = result.stdout
            expected = normalised(step.expected or "")
            got = align(normalised(output), expected, self.names)
            if got == expected or time.monotonic() > deadline or not _still_arriving(got, expected):
                break
            time.sleep(0.2)
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
        if got and isinstance(got[0], list) and got[0] and "read" in got[0][0]:
            self.last_notifications = json.loads(output)
        return got, expected

    def _with_this_runs_ids(self, step: Step) -> str:
        """The README marks notification 2 read, the id it got in the run the README shows; here it
        is the id of the notification with the same message."""
        match = re.search(r"/api/notifications/(\d+)/read", step.command)
        if not match or not step.expected:
            return step.command
        message = json.loads(step.expected)["message"]
        ids = [n["id"] for n in self.last_notifications if n["message"] == message]
        assert ids, f"no notification says {message!r} before it is marked read"
        return step.command.replace(f"/api/notifications/{match[1]}/read", f"/api/notifications/{ids[0]}/read")


def _still_arriving(got: list[Any], expected: list[Any]) -> bool:
    """A list shorter than the README's, or an audit not yet clean: the pipeline is still at work."""
    if got and expected and isinstance(got[0], list) and isinstance(expected[0], list):
        return len(got[0]) < len(expected[0])
    return bool(expected) and expected[-1] == "audit clean"


def curl_home(directory: Path, host: str, port: int) -> dict[str, str]:
    """An environment whose curl sends `host` to 127.0.0.1:port, as a hosts-file line would."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".curlrc").write_text(f"resolve = {host}:{port}:127.0.0.1\n")
    return {"CURL_HOME": str(directory), "PATH": os.environ["PATH"]}
