"""Generate the Python protobuf and gRPC modules from ``protos/``.

The generated modules live in ``intelshare/v1`` so that their own imports
(``from intelshare.v1 import envelope_pb2``) resolve inside the core package.
``--check`` regenerates into a scratch directory and fails if the committed
files differ, which keeps generated code honest in ``make check``.
"""

from __future__ import annotations

import argparse
import os
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "protos"
PACKAGE_DIR = Path("intelshare") / "v1"


def generate(out: Path) -> None:
    from grpc_tools import protoc

    # The mypy plugins are console scripts next to this interpreter.
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")

    well_known = str(resources.files("grpc_tools") / "_proto")
    # Only our own package: protos/google/ holds vendored copies of Google's
    # protos (for buf and for other languages' clients), whose Python modules
    # come from googleapis-common-protos.
    sources = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "intelshare").rglob("*.proto")
    )
    (out / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    init = out / PACKAGE_DIR / "__init__.py"
    init.write_text('"""Generated protobuf and gRPC modules for package intelshare.v1."""\n')


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / PACKAGE_DIR
        committed = ROOT / PACKAGE_DIR
        names = {p.name for p in fresh.iterdir() if p.is_file()}
        have = {p.name for p in committed.iterdir() if p.is_file() and p.suffix in {".py", ".pyi"}}
        stale = sorted(names ^ have)
        _, mismatch, errors = filecmp.cmpfiles(fresh, committed, sorted(names & have), shallow=False)
        bad = stale + mismatch + errors
        if bad:
            print("generated code is stale, run `make proto`:", ", ".join(bad), file=sys.stderr)
            return 1
    print("generated code is fresh")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT)
    parser.add_argument("--check", action="store_true")
    ns = parser.parse_args()
    if ns.check:
        return check()
    generate(ns.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
