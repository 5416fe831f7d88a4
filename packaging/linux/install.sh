#!/bin/sh
# nanodictate installer for Linux (x86_64): one file, per user, no root.
#
#   sh nanodictate-VERSION-linux-x86_64.sh [--autostart] [--variant cpu|cu126|cu128|cu130] [--yes]
#
# Installs under the XDG folders: the app in $XDG_DATA_HOME/nanodictate/app (uv, the pinned
# dependencies, a Python from uv, torch), `nanodictate` in ~/.local/bin, the menu entry and
# icon in $XDG_DATA_HOME. torch starts as the small CPU build; the app offers the CUDA build
# at its first run when an NVIDIA GPU can use it. Running a newer installer again updates the
# app and keeps the runtime unless its dependencies changed (then it asks first).
# Uninstall: sh ~/.local/share/nanodictate/app/uninstall.sh
#
# The payload (a tar.gz after the marker line at the end) was appended by packaging/build.py.
set -eu

variant=cpu
autostart=no
yes=""
while [ $# -gt 0 ]; do
    case "$1" in
        --variant) variant="$2"; shift 2 ;;
        --autostart) autostart=yes; shift ;;
        --yes) yes="--yes"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "Unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

data_home=${XDG_DATA_HOME:-$HOME/.local/share}
app_dir="$data_home/nanodictate/app"
bin_dir="$HOME/.local/bin"
runtime_python="$app_dir/runtime/bin/python"
# Tests only: an interpreter on disk instead of the one uv downloads.
python_request=${NANODICTATE_INSTALL_PYTHON:-3.11}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
payload_line=$(awk '/^__NANODICTATE_PAYLOAD__$/ { print NR + 1; exit }' "$0")
tail -n +"$payload_line" "$0" | tar -xzf - -C "$work"

mkdir -p "$app_dir/locks" "$bin_dir"
install -m 755 "$work/uv" "$app_dir/uv"
install -m 644 "$work/locks/linux.txt" "$app_dir/locks/linux.txt"
install -m 755 "$work/uninstall.sh" "$app_dir/uninstall.sh"
export UV_CACHE_DIR="${UV_CACHE_DIR:-$app_dir/cache}"
export UV_PYTHON_INSTALL_DIR="${UV_PYTHON_INSTALL_DIR:-$app_dir/python}"

if [ ! -x "$runtime_python" ]; then
    echo "Creating the runtime (Python $python_request)…"
    "$app_dir/uv" venv --quiet --python "$python_request" "$app_dir/runtime"
fi
echo "Installing the app…"
"$app_dir/uv" pip install --quiet --python "$runtime_python" --no-deps --reinstall \
    "$work"/nanodictate-*.whl
if [ -f "$app_dir/install.json" ]; then
    "$runtime_python" -m nanodictate.core.runtime_install update $yes
else
    "$runtime_python" -m nanodictate.core.runtime_install install --variant "$variant"
fi

ln -sf "$app_dir/runtime/bin/nanodictate" "$bin_dir/nanodictate"
mkdir -p "$data_home/applications" "$data_home/icons/hicolor/scalable/apps"
install -m 644 "$work/nanodictate.svg" "$data_home/icons/hicolor/scalable/apps/nanodictate.svg"
# The menu entry names the launcher by its full path: ~/.local/bin is not on every PATH.
sed "s|^Exec=nanodictate|Exec=$app_dir/runtime/bin/nanodictate|" "$work/nanodictate.desktop" \
    > "$data_home/applications/nanodictate.desktop"
if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q "$data_home/applications" 2>/dev/null || true
fi
if [ "$autostart" = yes ]; then
    "$runtime_python" -c "from nanodictate.platform.autostart import set_enabled; set_enabled(True)"
fi

echo "nanodictate is installed. Start it from the menu, or run: $bin_dir/nanodictate"
case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *) echo "($bin_dir is not on your PATH: add it to call plain \`nanodictate\`.)" ;;
esac
exit 0
__NANODICTATE_PAYLOAD__
