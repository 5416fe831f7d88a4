"""``nanodictate update [SOURCE]``: upgrade an installed app, keeping its runtime unless the
runtime's lock changed, and then asking before the download.

SOURCE is a newer installer (``nanodictate-*-linux-x86_64.sh``, or the Windows Setup.exe,
which is opened) or an app wheel. Without it, the runtime is brought up to the lock the app
was installed with: the way to accept an update of the dependencies declined before.
Only for an app installed by its installer; a source checkout updates with git and pip.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from nanodictate.core.runtime_install import (
    RuntimeInstaller,
    installed_layout,
    update,
    uv_environment,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", nargs="?", type=Path, help="a newer installer or app wheel (optional)"
    )
    parser.add_argument("--yes", action="store_true", help="do not ask before downloading")


def run(args: argparse.Namespace) -> int:
    layout = installed_layout()
    if layout is None:
        print(
            "This nanodictate was not installed by its installer: update the checkout "
            "(git pull, then pip install -e .) instead.",
            file=sys.stderr,
        )
        return 1
    source: Path | None = args.source
    if source is not None and not source.is_file():
        print(f"No such file: {source}", file=sys.stderr)
        return 1
    installer = RuntimeInstaller(layout)
    if source is None:
        return update(installer, args.yes)
    if source.suffix == ".sh":
        # The installer updates the app and asks about the runtime itself.
        return subprocess.call(["sh", str(source), *(["--yes"] if args.yes else [])])
    if source.suffix == ".exe":
        # Windows cannot replace the files of a running program: Setup.exe takes over.
        subprocess.Popen([str(source)])
        print("The installer is open: quit nanodictate to let it replace the app.")
        return 0
    command = [
        str(layout.uv), "pip", "install", "--quiet", "--python", str(layout.python),
        "--no-deps", "--reinstall", str(source),
    ]  # fmt: skip
    if subprocess.call(command, env=uv_environment(layout)) != 0:
        print(f"Installing {source.name} failed", file=sys.stderr)
        return 1
    return update(installer, args.yes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="nanodictate update", description=__doc__.split("\n")[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
