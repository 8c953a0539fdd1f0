"""Core errors are shown in the GUI without command-line hints."""

import ast
from pathlib import Path

import pytest

from faceapp.gui.messages import for_gui

CORE = Path(__file__).resolve().parents[1] / "faceapp"
CLI_ONLY = {"bench.py", "calibrate.py", "messages.py"}
FACES = {"gui", "cli"}  # packages whose strings are their own face's, not the core's


def core_strings():
    """Every string constant in the core modules the GUI uses that mentions a flag or the CLI."""
    out = []
    for path in sorted(CORE.rglob("*.py")):
        if path.name in CLI_ONLY or FACES & set(path.relative_to(CORE).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
            if ("--" in text or "faceapp-cli" in text) and "\n" not in text:
                out.append(text)
    return out


def test_there_are_cli_hints_to_translate():
    assert len(core_strings()) >= 5


@pytest.mark.parametrize("text", core_strings())
def test_no_flag_or_cli_command_reaches_the_gui(text):
    shown = for_gui(text)
    assert "--" not in shown and "faceapp-cli" not in shown


def test_known_hints_point_to_the_settings():
    assert for_gui("gallery folder /x is not writable; fix its permissions or use --gallery") == (
        "gallery folder /x is not writable; fix its permissions or choose another gallery folder in Settings")
    assert for_gui("no person named 'A' in the gallery; see `faceapp-cli list`").endswith("see the People view")
    assert for_gui(ValueError("model file m does not exist; check --model or reinstall faceapp")).endswith(
        "choose another model file in Settings or reinstall faceapp")


def test_a_lookalike_refusal_names_the_apps_choices():
    text = ("these samples match 'Ann' (similarity 0.73), who is already enrolled; add them to 'Ann' with --add, "
            "or use --despite-match if 'Bo' is someone else; nothing was stored")
    assert for_gui(text).endswith("add them to 'Ann' instead, or save them under the new name if 'Bo' is someone "
                                  "else; nothing was stored")
