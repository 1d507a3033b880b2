"""The README stays true: its option table is the config's fields, its presets exist."""
import re
from pathlib import Path

from semistylegan.config import PRESETS, options_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_option_table_is_generated_from_the_config_fields():
    text = README.read_text()
    table = text.split("<!-- options:start -->\n", 1)[1].split("<!-- options:end -->", 1)[0]
    assert table == options_markdown()


def test_every_preset_the_readme_names_exists():
    text = README.read_text()
    named = set(re.findall(r"--preset ([a-z0-9-]+)", text))
    named |= set(re.findall(r"^\| `([a-z0-9][a-z0-9-]*)`", text, flags=re.M))  # the recipes table
    listed = text.split("GPU presets:", 1)[1].split("## Commands", 1)[0]
    named |= {n for n in re.findall(r"`([a-z0-9-/]+)`", listed) if not n.startswith("-")}
    named = {m for n in named for m in _expand(n)}
    assert {"dsprites-fast", "dsprites-ctrl", "dsprites-2h", "shapes3d-fine", "tiny"} <= named
    assert named <= set(PRESETS), sorted(named - set(PRESETS))


def _expand(name: str) -> list[str]:
    """`dsprites-cpu32/64` -> dsprites-cpu32, dsprites-cpu64."""
    head, sep, tail = name.partition("/")
    if not sep:
        return [name]
    stem = re.sub(r"[0-9]+$", "", head)
    return [head, stem + tail]
