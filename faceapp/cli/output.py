"""What every command prints: results on stdout (text, or one JSON document with --json), one error line
on stderr, progress bars on stderr, and the exit codes."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

EXIT_OK, EXIT_NO_MATCH, EXIT_ERROR = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a command ended by SIGPIPE


def emit(args: argparse.Namespace, doc: Any, text: str | Sequence[str]) -> None:
    """Print a command's result: ``doc`` as one JSON document with --json, else ``text`` (a line or lines)."""
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print(text if isinstance(text, str) else "\n".join(text))


def error_line(exc: BaseException | str) -> None:
    """One error line on stderr, the form every error of the CLI takes (stdout holds only results)."""
    print(f"faceapp-cli: error: {exc}", file=sys.stderr)


@contextlib.contextmanager
def progress_bar(args: argparse.Namespace, unit: str, desc: str) -> Iterator[Callable[[int, int], None]]:
    """The ``progress(done, total)`` that moves a tqdm bar on stderr, shown from its first call (never with --json)."""
    from tqdm import tqdm

    bars: list[Any] = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(unit=unit, desc=desc, disable=args.json or None, file=sys.stderr))
        bars[0].total = total
        bars[0].n = done
        bars[0].refresh()

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()
