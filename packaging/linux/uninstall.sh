#!/bin/sh
# Remove nanodictate installed by its Linux installer.
#
#   sh ~/.local/share/nanodictate/app/uninstall.sh [--remove-models] [--remove-history] [--yes]
#
# Removes the app, its runtime, launcher, menu entry, icon, autostart entry, settings, logs
# and caches. The downloaded models (≈2 GB) and the dictation history stay unless you ask
# to remove them: asked in a terminal, kept with --yes.
set -eu

remove_models=ask
remove_history=ask
while [ $# -gt 0 ]; do
    case "$1" in
        --remove-models) remove_models=yes; shift ;;
        --remove-history) remove_history=yes; shift ;;
        --yes) [ "$remove_models" = ask ] && remove_models=no
               [ "$remove_history" = ask ] && remove_history=no; shift ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "Unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

data_home=${XDG_DATA_HOME:-$HOME/.local/share}
config_home=${XDG_CONFIG_HOME:-$HOME/.config}
cache_home=${XDG_CACHE_HOME:-$HOME/.cache}
state_home=${XDG_STATE_HOME:-$HOME/.local/state}
data_dir="$data_home/nanodictate"
app_dir="$data_dir/app"

ask() {  # ask QUESTION: yes when the user answers y
    if [ ! -t 0 ]; then return 1; fi
    printf '%s [y/N] ' "$1"
    read -r answer
    case "$answer" in y|Y|yes) return 0 ;; *) return 1 ;; esac
}
[ "$remove_models" = ask ] && { ask "Also remove the downloaded speech models?" && remove_models=yes || remove_models=no; }
[ "$remove_history" = ask ] && { ask "Also remove your dictation history?" && remove_history=yes || remove_history=no; }

launcher="$HOME/.local/bin/nanodictate"
if [ -L "$launcher" ] && [ "$(readlink "$launcher")" = "$app_dir/runtime/bin/nanodictate" ]; then
    rm -f "$launcher"
fi
rm -f "$data_home/applications/nanodictate.desktop" \
      "$data_home/icons/hicolor/scalable/apps/nanodictate.svg" \
      "$config_home/autostart/nanodictate.desktop"
rm -rf "$config_home/nanodictate" "$cache_home/nanodictate" "$state_home/nanodictate"
if [ -d "$data_dir" ]; then
    for entry in "$data_dir"/* "$data_dir"/.[!.]*; do
        [ -e "$entry" ] || continue
        case "$(basename "$entry")" in
            models) [ "$remove_models" = yes ] || continue ;;
            history.sqlite3*) [ "$remove_history" = yes ] || continue ;;
        esac
        rm -rf "$entry"
    done
    rmdir "$data_dir" 2>/dev/null || true
fi
echo "nanodictate is uninstalled."
[ -d "$data_dir/models" ] && echo "Kept: $data_dir/models"
[ -n "$(ls "$data_dir"/history.sqlite3* 2>/dev/null)" ] && echo "Kept: $data_dir/history.sqlite3"
exit 0
