"""What setup.cfg declares, read the way setuptools reads it, for the packaging tests."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _config() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def _lines(section: str, key: str) -> list[str]:
    return [line.strip() for line in _config()[section][key].splitlines() if line.strip()]


def top_level_names() -> list[str]:
    """Every top-level import name the project installs: found packages and py_modules."""
    packages = [pattern.rstrip("*") for pattern in _lines("options.packages.find", "include")]
    return packages + _lines("options", "py_modules")


def pinned_version(distribution: str) -> str:
    """The version install_requires pins `distribution` to (`name==version`)."""
    for requirement in _lines("options", "install_requires"):
        name, _, version = requirement.partition("==")
        if re.sub(r"[-_.]+", "-", name.strip()).lower() == distribution.lower():
            return version.strip()
    raise LookupError(f"{distribution} is not pinned in setup.cfg")
