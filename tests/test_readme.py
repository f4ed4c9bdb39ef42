"""The README's promises stay true: every setting documented, the two commands as CI runs them."""

from pathlib import Path

from config.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "empty"
        assert f"| `{setting.name}` | {default} |" in README, setting.name


def test_ci_runs_the_readme_test_command() -> None:
    assert "bash scripts/test.sh" in README and "bash scripts/run.sh" in README
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
