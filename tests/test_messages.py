"""Core errors name their fix; the GUI words every fix for itself, without command-line hints."""

import ast
import logging
from pathlib import Path

import pytest

from faceapp.errors import DuplicatePersonError, FaceappError, Fix, GalleryError
from faceapp.gui.messages import COMMAND_LINE, WORDS, for_gui

CORE = Path(__file__).resolve().parents[1] / "faceapp"
# The command line and the tools only it runs (measurement, `model import`) may name flags.
CLI_ONLY = ({"cli", "gui", "measure"}, {("vision/models.py", "import_model")})
HINT = ("--", "faceapp-cli")


def _raised_texts():
    """(place, text) of every string in an error raised or logged by the core the GUI uses."""
    out = []
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE)
        if rel.parts[0] in CLI_ONLY[0]:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                and (rel.as_posix(), f.name) in CLI_ONLY[1] for n in ast.walk(f)}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            called = getattr(node.func, "attr", getattr(node.func, "id", "")) if isinstance(node, ast.Call) else ""
            if isinstance(node, ast.Raise) or called in ("warning", "error") or called.endswith("Error"):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                        out.append((f"{rel}:{sub.lineno}", sub.value))
    return out


def test_the_scan_sees_the_cores_errors():
    texts = [t for _, t in _raised_texts()]
    assert len(texts) > 100 and any("no person named" in t for t in texts)


def test_no_core_error_words_a_command_line_hint_itself():
    """A hint is a Fix, which each face words; an error's own text names no flag and no command."""
    worded = [(where, text) for where, text in _raised_texts() if any(h in text for h in HINT)]
    assert worded == []


@pytest.mark.parametrize("fix", list(Fix))
def test_every_fix_has_the_apps_words_and_no_flag(fix):
    words = WORDS[fix]
    if words.startswith(COMMAND_LINE):  # only the command line can do it: the app says so
        assert "faceapp-cli" in words
    else:
        assert not any(h in words for h in HINT)


def test_an_error_reads_as_problem_and_fix_in_each_face():
    err = GalleryError("gallery /x cannot be written", Fix.CHOOSE_MODEL)
    assert str(err) == "gallery /x cannot be written; check --model"
    assert for_gui(err) == "gallery /x cannot be written; choose another model file in Settings"
    assert err.problem == "gallery /x cannot be written" and err.fix is Fix.CHOOSE_MODEL


def test_a_fix_with_fields_is_filled_in_both_faces():
    err = FaceappError("these samples match 'Ann' (similarity 0.73), who is already enrolled; nothing was stored",
                       Fix.ADD_OR_DESPITE, match="Ann", name="Bo")
    assert str(err).endswith("add them to 'Ann' with --add, or use --despite-match if 'Bo' is someone else")
    assert for_gui(err).endswith("add them to 'Ann' instead, or save them under the new name if 'Bo' is someone else")


def test_errors_without_a_fix_and_plain_texts_are_shown_as_they_are():
    assert for_gui(DuplicatePersonError("a person named 'A' already exists")) == "a person named 'A' already exists"
    assert for_gui(ValueError("x")) == "x" and for_gui("text") == "text"


def test_a_logged_error_reaches_the_problem_list_in_the_apps_words(qtbot):
    from faceapp.gui.status import ProblemLog

    problems = ProblemLog("faceapp.test_messages")
    try:
        logging.getLogger("faceapp.test_messages").warning(
            "%s", GalleryError("gallery g: 2 damaged template(s) left out of search", Fix.CHECK_TEMPLATES))
    finally:
        problems.detach()
    [text] = problems.counts
    assert text.startswith("gallery g: 2 damaged") and "faceapp-cli" not in text and "Repair" in text
