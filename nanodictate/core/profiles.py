"""Per-app profiles: what changes when a dictation goes to a particular kind of window.

A profile matches the window that has focus at key-down — by its class (X11 ``WM_CLASS``,
the window class on Windows), the name of the program that owns it ("firefox", "code",
"windowsterminal": `WindowInfo.process_name`), its title, or the platform's knowing it is a
terminal — and sets, for that dictation, the paste method, the language, extra hotwords, the
text steps, auto-submit, and two finishing touches for command lines (no capital at the
start, no period at the end). A key a profile leaves out keeps the settings' value. The
first enabled profile that matches wins.

The profiles live in a TOML file in the user config folder (``profiles.toml``), not in the
settings INI: a profile is a record (what it matches, what it changes), which the settings'
types (text, a list of text, text → text) could hold only as JSON inside a string. A
commented TOML file explains each key beside the examples, which ship written out and
disabled for the user to switch on. The file is read again whenever it changes; a profile
with a mistake is left out and the mistake described in words for the user.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nanodictate.core.languages import language_for
from nanodictate.core.ports import WindowInfo, normal_process_name
from nanodictate.core.text_output import PasteMethod
from nanodictate.core.text_steps import TextStepsConfig

log = logging.getLogger(__name__)

PROFILES_FILE_NAME = "profiles.toml"

__all__ = [
    "EXAMPLE_PROFILES",
    "PROFILES_FILE_NAME",
    "Profile",
    "ProfileBook",
    "ProfileList",
    "finish_text",
    "parse_profiles",
    "profile_for",
    "profile_hotwords",
    "profile_language",
    "profile_paste_method",
    "profile_steps",
]


@dataclass(frozen=True)
class Profile:
    name: str
    enabled: bool = True
    # Which windows: shell-style patterns (any case) for the class, the process name and the
    # title; `terminals` matches every window the platform recognises as a terminal.
    apps: tuple[str, ...] = ()
    process: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()
    terminals: bool = False
    # What changes; None keeps the setting's value.
    paste_method: PasteMethod | None = None
    language: str | None = None
    hotwords: tuple[str, ...] = ()  # added to the settings' hotwords
    voice_commands: bool | None = None
    spoken_punctuation: bool | None = None
    remove_fillers: bool | None = None
    replacements: tuple[str, ...] = ()  # applied after the settings' rules
    auto_submit: bool | None = None
    lowercase_start: bool = False
    drop_final_period: bool = False

    def matches(self, window: WindowInfo) -> bool:
        """A profile with `apps`, `process` or `terminals` needs the window to be one of them
        (any one is enough); with `titles` the title must fit one too (a profile with titles
        only matches by title)."""
        if self.apps or self.process or self.terminals:
            one_of_them = (
                _fits(window.app_class, self.apps)
                or self._process_fits(window.process_name)
                or (self.terminals and window.is_terminal)
            )
            if not one_of_them:
                return False
        return not self.titles or _fits(window.title, self.titles)

    def _process_fits(self, process_name: str) -> bool:
        # An unknown process (a remote X client) fits no pattern, not even "*"; a pattern
        # written as "Code.exe" or a path means the same program as "code".
        patterns = [normal_process_name(pattern) for pattern in self.process]
        return bool(process_name) and _fits(process_name, patterns)


def _fits(text: str, patterns: Sequence[str]) -> bool:
    folded = text.casefold()
    return any(fnmatch.fnmatchcase(folded, pattern.casefold()) for pattern in patterns)


@dataclass(frozen=True)
class ProfileList:
    profiles: tuple[Profile, ...] = ()
    problems: tuple[str, ...] = ()  # one sentence for the user per profile (or file) left out


# ------------------------------------------------------------------------------- reading

_TEXT_LISTS = ("apps", "process", "titles", "hotwords", "replacements")
_SWITCHES = (
    "enabled",
    "terminals",
    "voice_commands",
    "spoken_punctuation",
    "remove_fillers",
    "auto_submit",
    "lowercase_start",
    "drop_final_period",
)
_KNOWN_KEYS = {"name", "paste_method", "language", *_TEXT_LISTS, *_SWITCHES}


class _ProfileProblem(ValueError):
    pass


def parse_profiles(text: str) -> ProfileList:
    """The profiles a profiles file holds; the ones with a mistake are left out and told."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return ProfileList(problems=(f"The profiles file is not valid TOML ({error}).",))
    problems = [
        f'The profiles file has an unknown section "{key}" (profiles go in [[profile]]).'
        for key in document
        if key != "profile"
    ]
    entries = document.get("profile", [])
    if not isinstance(entries, list):
        return ProfileList(problems=("Write each profile as a [[profile]] table.",))
    profiles = []
    for number, entry in enumerate(entries, start=1):
        name = entry.get("name") if isinstance(entry, dict) else None
        called = f'Profile {number} ("{name}")' if isinstance(name, str) else f"Profile {number}"
        try:
            profiles.append(_profile(entry))
        except _ProfileProblem as problem:
            problems.append(f"{called} is left out: {problem}")
    return ProfileList(tuple(profiles), tuple(problems))


def _profile(entry: object) -> Profile:
    if not isinstance(entry, dict):
        raise _ProfileProblem("it is not a table.")
    unknown = sorted(set(entry) - _KNOWN_KEYS)
    if unknown:
        raise _ProfileProblem(f"unknown key {', '.join(unknown)}.")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _ProfileProblem("it needs a name.")
    values: dict[str, object] = {"name": name.strip()}
    for key in _TEXT_LISTS:
        if key in entry:
            values[key] = _text_list(key, entry[key])
    for key in _SWITCHES:
        if key in entry:
            if not isinstance(entry[key], bool):
                raise _ProfileProblem(f"{key} must be true or false.")
            values[key] = entry[key]
    if "paste_method" in entry:
        try:
            values["paste_method"] = PasteMethod(entry["paste_method"])
        except ValueError:
            choices = ", ".join(f'"{method.value}"' for method in PasteMethod)
            raise _ProfileProblem(f"paste_method must be one of {choices}.") from None
    if "language" in entry:
        try:
            values["language"] = language_for(str(entry["language"])).code
        except ValueError as error:
            raise _ProfileProblem(str(error)) from None
    profile = Profile(**values)  # type: ignore[arg-type]  # each value checked above
    if not (profile.apps or profile.process or profile.titles or profile.terminals):
        raise _ProfileProblem(
            "it matches no window (give apps, process, titles or terminals = true)."
        )
    return profile


def _text_list(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _ProfileProblem(f'{key} must be a list of text, like ["one", "two"].')
    return tuple(item for item in value if item.strip())


class ProfileBook:
    """The profiles file, read again when it changes (checked at each use: one `stat`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._list = ProfileList()

    def load(self) -> ProfileList:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            self._seen, self._list = None, ProfileList()
            return self._list
        except OSError as error:
            return ProfileList(problems=(f"The profiles file cannot be read ({error}).",))
        seen = (status.st_mtime_ns, status.st_size)
        if seen != self._seen:
            try:
                self._list = parse_profiles(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as error:
                self._list = ProfileList(problems=(f"The profiles file cannot be read ({error}).",))
            self._seen = seen
            log.info(
                "Profiles: %d (%d enabled), %d left out",
                len(self._list.profiles),
                sum(profile.enabled for profile in self._list.profiles),
                len(self._list.problems),
            )
        return self._list

    def match(self, window: WindowInfo | None) -> Profile | None:
        return profile_for(window, self.load().profiles)

    def ensure_file(self) -> Path:
        """The profiles file, written with the (disabled) examples when there is none yet."""
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.name + ".new")
            temporary.write_text(EXAMPLE_PROFILES, encoding="utf-8")
            os.replace(temporary, self.path)
        return self.path


# ------------------------------------------------------------------------------ applying


def profile_for(window: WindowInfo | None, profiles: Sequence[Profile]) -> Profile | None:
    """The first enabled profile that matches `window` (None: no window known, or no match)."""
    if window is None:
        return None
    return next((p for p in profiles if p.enabled and p.matches(window)), None)


def profile_language(profile: Profile | None, chosen: str | None, default: str) -> str:
    """A dictation's language: one its hotkey chose, else the profile's, else the setting."""
    return chosen or (profile.language if profile else None) or default


def profile_hotwords(profile: Profile | None, hotwords: Sequence[str]) -> tuple[str, ...]:
    extra = profile.hotwords if profile else ()
    return tuple(dict.fromkeys([*hotwords, *extra]))  # in order, each once


def profile_paste_method(profile: Profile | None, method: PasteMethod) -> PasteMethod:
    return profile.paste_method if profile and profile.paste_method else method


def profile_steps(profile: Profile | None, config: TextStepsConfig) -> TextStepsConfig:
    if profile is None:
        return config
    switches: Mapping[str, bool | None] = {
        "voice_commands": profile.voice_commands,
        "spoken_punctuation": profile.spoken_punctuation,
        "remove_fillers": profile.remove_fillers,
        "auto_submit": profile.auto_submit,
    }
    chosen = {key: value for key, value in switches.items() if value is not None}
    return replace(config, replacements=(*config.replacements, *profile.replacements), **chosen)


_FINAL_PERIODS = (".", "。")


def finish_text(profile: Profile | None, text: str) -> str:
    """The profile's finishing touches on the text that goes out, e.g. "Git status." →
    "git status" for a shell: an acronym ("API docs") keeps its capitals, and an ellipsis
    its dots."""
    if profile is None or not text:
        return text
    if profile.drop_final_period:
        body = text.rstrip()
        if body.endswith(_FINAL_PERIODS) and not body[:-1].endswith(_FINAL_PERIODS):
            text = body[:-1] + text[len(body) :]
    if profile.lowercase_start:
        lead = len(text) - len(text.lstrip())
        head = text[lead : lead + 2]
        if head[:1].isupper() and not head[1:2].isupper():
            text = text[:lead] + head[0].lower() + text[lead + 1 :]
    return text


EXAMPLE_PROFILES = """\
# nanodictate per-app profiles (the tray menu's "Per-app profiles…" opens this file).
#
# A profile applies to a dictation when the window that has focus at key-down matches it.
# The first enabled profile that matches wins; changes apply from the next dictation.
#
# Which windows (at least one of these):
#   apps      = ["kitty", "*term*"]   window class: X11 WM_CLASS (see `xprop WM_CLASS`), or
#                                     the window class on Windows; * and ? match, any case
#   process   = ["firefox", "code"]   the program that owns the window: its executable's name
#                                     without ".exe" (as `ps -e` or the Task Manager shows
#                                     it), same patterns
#   titles    = ["*Slack*"]           window title, same patterns (with apps or process: the
#                                     title must fit too)
#   terminals = true                  every window nanodictate knows as a terminal
#   (apps, process and terminals: any one of them is enough)
#
# What changes (leave a key out to keep the setting):
#   paste_method       = "paste" | "type" | "copy"
#   language           = "en"            (a language hotkey still wins)
#   hotwords           = ["kubectl"]     added to the settings' hotwords
#   voice_commands     = true | false
#   spoken_punctuation = true | false
#   remove_fillers     = true | false
#   replacements       = ["get status => git status"]   after the settings' rules
#   auto_submit        = true | false    press Enter after the paste
#   lowercase_start    = true            "Git status" -> "git status"
#   drop_final_period  = true            "git status." -> "git status"
#
# The examples below are off: set enabled = true to use one.

[[profile]]
name = "Terminal"
enabled = false
terminals = true
apps = ["*terminal*", "kitty", "alacritty", "konsole", "xterm", "urxvt", "foot", "wezterm"]
process = [
  "gnome-terminal-server", "ptyxis", "konsole", "xfce4-terminal", "tilix", "alacritty",
  "kitty", "wezterm-gui", "foot", "xterm", "urxvt", "windowsterminal", "mintty",
]
voice_commands = false
lowercase_start = true
drop_final_period = true

[[profile]]
name = "Chat"
enabled = false
apps = ["slack", "discord", "signal", "telegramdesktop", "element", "teams*"]
process = [
  "slack", "discord", "signal-desktop", "signal", "telegram-desktop", "telegram",
  "element-desktop", "element", "ms-teams", "teams",
]
auto_submit = true
"""
