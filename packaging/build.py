"""Build the installers from this checkout.

    .venv/bin/python packaging/build.py linux   [--uv PATH] [--out dist]
    .venv/bin/python packaging/build.py windows [--uv PATH] [--out dist]    (needs makensis)

Both carry the app's wheel, the runtime lock for their OS and `uv`, and no torch: the
installer's uv builds the runtime on the user's machine (core/runtime_install.py).

Linux: one shell script with a tar.gz appended (install.sh + payload). Chosen over an
AppImage because the runtime cannot live inside a read-only image: torch is chosen per GPU
after install (0.2 – 3 GB), and AppImages also need FUSE, missing on new Ubuntu releases.
Windows: an NSIS Setup.exe (windows/installer.nsi), built here on Linux with makensis.

`--uv` takes a uv binary or a uv wheel (tests pass the one beside the test interpreter);
without it the wheel for the target platform is downloaded from PyPI with pip.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
UV_VERSION = "0.13.9"
UV_PLATFORMS = {"linux": "manylinux_2_17_x86_64", "windows": "win_amd64"}
UV_BINARIES = {"linux": "uv", "windows": "uv.exe"}
PAYLOAD_MARKER = b"__NANODICTATE_PAYLOAD__\n"
# What a wheel is built from: the package and what pyproject.toml names beside it.
_SOURCES = ("pyproject.toml", "README.md", "nanodictate", "resources")


def app_version() -> str:
    sys.path.insert(0, str(ROOT))
    from nanodictate import __version__

    return __version__


def build_wheel(out: Path) -> Path:
    """The app's wheel, built from a copy of the sources so the checkout gets no build/."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "src"
        source.mkdir()
        for name in _SOURCES:
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, source / name)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
             "--no-build-isolation", "--wheel-dir", str(out), str(source)],
            check=True,
        )  # fmt: skip
    return next(out.glob("nanodictate-*.whl"))


def uv_binary(target: str, given: Path | None, work: Path) -> Path:
    """The uv executable for `target`: `given` (a binary or a wheel), else PyPI's wheel."""
    wheel = given
    if given is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--platform", UV_PLATFORMS[target], "--dest", str(work),
             f"uv=={UV_VERSION}"],
            check=True,
        )  # fmt: skip
        wheel = next(work.glob("uv-*.whl"))
    assert wheel is not None
    if wheel.suffix != ".whl":
        return wheel
    name = UV_BINARIES[target]
    with zipfile.ZipFile(wheel) as archive:
        member = next(m for m in archive.namelist() if m.endswith(f".data/scripts/{name}"))
        binary = work / name
        binary.write_bytes(archive.read(member))
    return binary


def _add(archive: tarfile.TarFile, path: Path, name: str, mode: int = 0o644) -> None:
    info = archive.gettarinfo(str(path), arcname=name)
    info.mode, info.uid, info.gid, info.uname, info.gname = mode, 0, 0, "", ""
    with path.open("rb") as stream:
        archive.addfile(info, stream)


def build_linux(out: Path, uv: Path | None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        wheel = build_wheel(work)
        payload = io.BytesIO()
        with tarfile.open(fileobj=payload, mode="w:gz") as archive:
            _add(archive, uv_binary("linux", uv, work), "uv", 0o755)
            _add(archive, wheel, wheel.name)
            _add(archive, PACKAGING / "locks" / "linux.txt", "locks/linux.txt")
            _add(archive, PACKAGING / "linux" / "uninstall.sh", "uninstall.sh", 0o755)
            for asset in ("nanodictate.desktop", "nanodictate.svg"):
                _add(archive, ROOT / "resources" / "linux" / asset, asset)
    script = (PACKAGING / "linux" / "install.sh").read_bytes()
    if not script.endswith(PAYLOAD_MARKER):
        raise SystemExit("install.sh must end with its payload marker line")
    installer = out / f"nanodictate-{app_version()}-linux-x86_64.sh"
    installer.write_bytes(script + payload.getvalue())
    installer.chmod(0o755)
    return installer


def build_windows(out: Path, uv: Path | None, fast: bool = False) -> Path:
    makensis = shutil.which("makensis")
    if makensis is None:
        raise SystemExit("makensis is missing: apt-get install nsis")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        payload = work / "payload"
        (payload / "locks").mkdir(parents=True)
        wheel = build_wheel(payload)
        shutil.copy2(uv_binary("windows", uv, work), payload / "uv.exe")
        shutil.copy2(PACKAGING / "locks" / "windows.txt", payload / "locks" / "windows.txt")
        installer = out / f"nanodictate-{app_version()}-windows-x64-setup.exe"
        subprocess.run(
            [makensis, "-V2", *(["-XSetCompressor /FINAL zlib"] if fast else []),
             f"-DVERSION={app_version()}", f"-DPAYLOAD={payload}",
             f"-DWHEEL={wheel.name}", f"-DOUTFILE={installer.resolve()}",
             str(PACKAGING / "windows" / "installer.nsi")],
            check=True,
        )  # fmt: skip
    return installer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=["linux", "windows"])
    parser.add_argument("--uv", type=Path, help="a uv binary or wheel for the target")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument(
        "--fast", action="store_true", help="Windows: zlib instead of LZMA (tests; larger file)"
    )
    args = parser.parse_args()
    if args.target == "linux":
        print(build_linux(args.out, args.uv))
    else:
        print(build_windows(args.out, args.uv, args.fast))
    return 0


if __name__ == "__main__":
    sys.exit(main())
