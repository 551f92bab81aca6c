"""Screening an uploaded declarations file through the node's ScreenDeclarations stream.

The file is read by the node package's own readers (CSV or JSON Lines,
:mod:`node.targeting.declarations`, the same as ``intelshare screen``):
bad lines are collected with their line and column while the rest is
streamed to the node in batches; the node's answers come back in order.
Only the summary is kept (what was read, screened, targeted, the hits the
node stored and why), never the declarations themselves.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from console.node_client import ConsoleClient
from intelshare.v1 import risk_service_pb2
from node.cli.screen import to_message
from node.targeting.declarations import Parsed, read_declarations

S = risk_service_pb2
#: Largest file the console accepts (the command line has no such limit: use it for more).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Problems and targeted declarations listed on the page at most (the counts are complete).
MAX_LISTED = 200


@dataclass
class Problem:
    line: int
    column: str
    message: str


@dataclass
class Summary:
    file_name: str
    read: int = 0
    screened: int = 0
    hits: int = 0
    problems: list[Problem] = field(default_factory=list)
    bad_lines: set[int] = field(default_factory=set)
    targeted: list[S.DeclarationScreening] = field(default_factory=list)
    targeted_count: int = 0
    by_profile: Counter[str] = field(default_factory=Counter)
    titles: dict[str, str] = field(default_factory=dict)

    def problem(self, line: int, column: str, message: str) -> None:
        self.bad_lines.add(line)
        if len(self.problems) < MAX_LISTED:
            self.problems.append(Problem(line, column, message))

    def answer(self, result: S.DeclarationScreening) -> None:
        if result.errors:
            for column, message in sorted(result.errors.items()):
                self.problem(int(result.line), column, f"refused by the node: {message}")
            return
        self.screened += 1
        if not result.targeted:
            return
        self.targeted_count += 1
        self.hits += len(result.hits)
        if len(self.targeted) < MAX_LISTED:
            self.targeted.append(result)
        for p in result.profiles:
            self.by_profile[p.profile] += 1
            self.titles[p.profile] = p.title


def screen_file(
    client: ConsoleClient, data: bytes, fmt: Literal["csv", "jsonl"], file_name: str
) -> Summary:
    """Screen every good line of ``data``; blocking (run it on a worker thread)."""
    summary = Summary(file_name)

    def declarations() -> Iterator[S.Declaration]:
        for item in read_declarations(io.BytesIO(data), fmt):
            if isinstance(item, Parsed):
                summary.read += 1
                yield to_message(item.declaration, item.line)
            else:
                summary.problem(item.line, item.column, item.message)

    for result in client.screen(declarations()):
        summary.answer(result)
    return summary
