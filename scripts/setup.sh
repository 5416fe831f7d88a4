#!/bin/sh
# Set up nanodictate in ./.venv on Debian/Ubuntu.
#   sh scripts/setup.sh           what the app needs
#   sh scripts/setup.sh --tests   also what the test suite needs (virtual X server, tray host,
#                                 PulseAudio virtual microphone, espeak-ng speech, xdotool…)
# Safe to run again: installed packages are skipped.
set -eu
cd "$(dirname "$0")/.."

APP_PACKAGES="libportaudio2 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 libegl1 libdbus-1-3 xclip"
# nsis and p7zip-full: the Windows installer is built and listed (tests/test_installer_windows.py).
TEST_PACKAGES="xvfb xdotool x11-utils xauth xterm trayer pulseaudio pulseaudio-utils espeak-ng sox imagemagick dbus-daemon nsis p7zip-full"
EXTRA=""
packages=$APP_PACKAGES
if [ "${1:-}" = "--tests" ]; then
    packages="$APP_PACKAGES $TEST_PACKAGES"
    EXTRA="[test]"
fi

missing=""
if command -v dpkg-query >/dev/null 2>&1; then
    for package in $packages; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $package"
    done
fi
if [ -n "$missing" ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    echo "Installing system packages:$missing"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of torch first, so nothing below pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".$EXTRA"
echo "nanodictate is installed in .venv"
