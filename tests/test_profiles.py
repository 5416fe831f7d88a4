"""Per-app profiles (nanodictate.core.profiles): which window gets which profile, what a
profile changes, and how mistakes in the user's file are told."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from nanodictate.core.ports import WindowInfo
from nanodictate.core.profiles import (
    EXAMPLE_PROFILES,
    Profile,
    ProfileBook,
    finish_text,
    parse_profiles,
    profile_for,
    profile_hotwords,
    profile_language,
    profile_paste_method,
    profile_steps,
)
from nanodictate.core.text_output import PasteMethod
from nanodictate.core.text_steps import TextStepsConfig, apply_text_steps

KITTY = WindowInfo(1, "~/src: git", "kitty", is_terminal=True)
XTERM = WindowInfo(2, "bash", "XTerm", is_terminal=True, pastes_primary=True)
SLACK = WindowInfo(3, "general | Slack", "Slack", is_terminal=False)
BROWSER_SLACK = WindowInfo(4, "general | Slack - Mozilla Firefox", "firefox", is_terminal=False)
EDITOR = WindowInfo(5, "notes.txt", "gedit", is_terminal=False)


def enabled_examples() -> tuple[Profile, ...]:
    text = EXAMPLE_PROFILES.replace("enabled = false", "enabled = true")
    found = parse_profiles(text)
    assert found.problems == ()
    return found.profiles


def test_the_examples_ship_disabled_and_match_nothing() -> None:
    found = parse_profiles(EXAMPLE_PROFILES)
    assert found.problems == ()
    assert [(p.name, p.enabled) for p in found.profiles] == [("Terminal", False), ("Chat", False)]
    assert all(profile_for(w, found.profiles) is None for w in (KITTY, SLACK, EDITOR))


def test_each_window_gets_its_profile_by_class_any_case() -> None:
    profiles = enabled_examples()
    assert [getattr(profile_for(w, profiles), "name", None) for w in (KITTY, XTERM, SLACK)] == [
        "Terminal",
        "Terminal",
        "Chat",
    ]
    assert profile_for(EDITOR, profiles) is None
    assert profile_for(None, profiles) is None  # focus unknown: no profile


def test_terminals_match_what_the_platform_knows_and_titles_narrow_the_match() -> None:
    only_terminals = Profile("Shell", terminals=True)
    odd_terminal = WindowInfo(9, "sh", "cool-retro-term", is_terminal=True)
    assert only_terminals.matches(odd_terminal) and not only_terminals.matches(EDITOR)
    slack_tab = Profile("Slack tab", titles=("*| slack*",))
    assert slack_tab.matches(BROWSER_SLACK) and slack_tab.matches(SLACK)
    firefox_slack = Profile("Slack in Firefox", apps=("firefox",), titles=("*slack*",))
    assert firefox_slack.matches(BROWSER_SLACK) and not firefox_slack.matches(SLACK)
    assert not firefox_slack.matches(WindowInfo(6, "News", "firefox", is_terminal=False))


# Electron apps on Windows share one window class: only the process tells them apart.
DISCORD_ON_WINDOWS = WindowInfo(
    7, "#general - Discord", "Chrome_WidgetWin_1", False, False, "discord"
)
CODE_ON_WINDOWS = WindowInfo(8, "main.py - Code", "Chrome_WidgetWin_1", False, False, "code")


def test_the_examples_match_by_process_name_where_the_class_says_nothing() -> None:
    profiles = enabled_examples()
    assert getattr(profile_for(DISCORD_ON_WINDOWS, profiles), "name", None) == "Chat"
    assert profile_for(CODE_ON_WINDOWS, profiles) is None
    ptyxis = WindowInfo(9, "~", "org.gnome.Ptyxis", False, process_name="ptyxis")
    assert getattr(profile_for(ptyxis, profiles), "name", None) == "Terminal"


def test_process_patterns_any_case_with_or_without_exe() -> None:
    code = Profile("Code", process=("Code.exe",))
    assert code.matches(CODE_ON_WINDOWS) and not code.matches(DISCORD_ON_WINDOWS)
    assert Profile("Paths", process=("/usr/share/code/CODE",)).matches(CODE_ON_WINDOWS)
    electron = Profile("Electron", process=("disc*", "sl?ck"))
    assert electron.matches(DISCORD_ON_WINDOWS)
    assert electron.matches(WindowInfo(1, "", "", False, process_name="slack"))
    # A window whose process is unknown (another host's X client) fits no pattern, even "*".
    assert not Profile("Any", process=("*",)).matches(SLACK)
    # Class, process and terminals: any one is enough; titles still narrow the match.
    either = Profile("Either", apps=("gedit",), process=("code",))
    assert either.matches(EDITOR) and either.matches(CODE_ON_WINDOWS)
    assert not either.matches(DISCORD_ON_WINDOWS)
    code_tests = Profile("Code tests", process=("code",), titles=("test_*",))
    assert not code_tests.matches(CODE_ON_WINDOWS)
    assert code_tests.matches(replace(CODE_ON_WINDOWS, title="test_profiles.py - Code"))


def test_the_first_enabled_match_wins() -> None:
    profiles = (
        Profile("Off", enabled=False, apps=("slack",)),
        Profile("First", apps=("sl*",)),
        Profile("Second", apps=("slack",)),
    )
    assert profile_for(SLACK, profiles) == profiles[1]


def test_mistakes_leave_out_that_profile_and_are_told() -> None:
    text = """
[[profile]]
name = "Typo"
apps = ["kitty"]
auto_sumbit = true

[[profile]]
name = "Klingon"
apps = ["kitty"]
language = "tlh"

[[profile]]
name = "Fax"
apps = ["kitty"]
paste_method = "fax"

[[profile]]
name = "Nowhere"

[[profile]]
name = "Numbers"
process = [1, 2]

[[profile]]
name = "Good"
apps = "kitty"
language = "zh-CN"
paste_method = "type"

[[profile]]
name = "By process"
process = "Code.exe"
"""
    found = parse_profiles(text)
    assert [p.name for p in found.profiles] == ["Good", "By process"]
    assert found.profiles[1].process == ("Code.exe",)
    assert found.profiles[1].matches(CODE_ON_WINDOWS)
    good = found.profiles[0]
    assert good.apps == ("kitty",) and good.language == "zh"
    assert good.paste_method is PasteMethod.TYPE
    assert found.problems[0] == 'Profile 1 ("Typo") is left out: unknown key auto_sumbit.'
    assert found.problems[1].startswith('Profile 2 ("Klingon") is left out: Unknown language')
    assert found.problems[2] == (
        'Profile 3 ("Fax") is left out: paste_method must be one of "paste", "type", "copy".'
    )
    assert "matches no window" in found.problems[3]
    assert found.problems[4] == (
        'Profile 5 ("Numbers") is left out: process must be a list of text, like ["one", "two"].'
    )
    broken = parse_profiles('[[profile]\nname = "x"')
    assert broken.profiles == () and broken.problems[0].startswith("The profiles file is not")


def test_a_profile_changes_only_what_it_sets() -> None:
    settings_steps = TextStepsConfig(replacements=("teh => the",))
    chat = Profile("Chat", apps=("slack",), auto_submit=True, replacements=("lgtm => LGTM",))
    assert profile_steps(chat, settings_steps) == TextStepsConfig(
        auto_submit=True, replacements=("teh => the", "lgtm => LGTM")
    )
    assert profile_steps(None, settings_steps) is settings_steps
    shell = Profile("Shell", terminals=True, voice_commands=False, paste_method=PasteMethod.TYPE)
    assert profile_steps(shell, settings_steps).voice_commands is False
    assert profile_paste_method(shell, PasteMethod.PASTE) is PasteMethod.TYPE
    assert profile_paste_method(chat, PasteMethod.COPY) is PasteMethod.COPY


def test_language_and_hotwords_for_a_dictation() -> None:
    chinese = Profile("WeChat", apps=("wechat",), language="zh", hotwords=("nanodictate", "Qwen"))
    assert profile_language(chinese, None, "en") == "zh"
    assert profile_language(chinese, "ja", "en") == "ja"  # a language hotkey still wins
    assert profile_language(None, None, "en") == "en"
    assert profile_hotwords(chinese, ["Qwen", "FunASR"]) == ("Qwen", "FunASR", "nanodictate")
    assert profile_hotwords(None, ["FunASR"]) == ("FunASR",)


def test_a_shell_profile_turns_a_sentence_into_a_command() -> None:
    shell = enabled_examples()[0]
    config = profile_steps(shell, TextStepsConfig())
    said = "Git commit, new line."
    steps = apply_text_steps(said, "en", config)
    assert finish_text(shell, steps.text) == "git commit, new line"  # commands are off here
    assert finish_text(shell, "API docs.") == "API docs"
    assert finish_text(shell, "Wait...") == "wait..."
    assert finish_text(shell, "查看日志。") == "查看日志"
    assert finish_text(None, "Git status.") == "Git status."


def test_the_book_reads_the_file_again_when_it_changes(tmp_path: Path) -> None:
    book = ProfileBook(tmp_path / "config" / "profiles.toml")
    assert book.match(SLACK) is None  # no file yet: no profiles, nothing to tell
    assert book.load().problems == ()
    path = book.ensure_file()
    assert path.read_text(encoding="utf-8") == EXAMPLE_PROFILES
    assert book.match(SLACK) is None  # examples are off
    path.write_text(EXAMPLE_PROFILES.replace("enabled = false", "enabled = true"), "utf-8")
    os.utime(path, ns=(1, 1))  # a different mtime, even on a coarse clock
    assert getattr(book.match(SLACK), "name", None) == "Chat"
    path.write_text("edited by hand", encoding="utf-8")
    os.utime(path, ns=(2, 2))
    assert book.match(SLACK) is None and len(book.load().problems) == 1
    book.ensure_file()  # an existing file is never overwritten
    assert path.read_text(encoding="utf-8") == "edited by hand"
