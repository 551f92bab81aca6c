"""``python -m intelshare.interop.publish DIRECTORY``: write the extension's published files.

The files in ``docs/stix/`` are generated from :mod:`intelshare.interop.extension`
(a test checks they are current); run this after changing the extension.
"""

from __future__ import annotations

import sys
from pathlib import Path

from intelshare.interop.extension import published_files


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m intelshare.interop.publish DIRECTORY", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, text in published_files().items():
        (out / name).write_text(text)
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
