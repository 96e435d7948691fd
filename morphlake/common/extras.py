"""How to install one of morphlake's extras, however morphlake was installed (it is on no package index)."""

from __future__ import annotations

import shlex
from importlib import metadata


def extra_requirements(extra: str) -> list[str]:
    """The requirements of one extra, as the installed morphlake's metadata lists them (empty when it has none)."""
    try:
        requires = metadata.requires("morphlake") or []
    except metadata.PackageNotFoundError:
        return []
    marker = f'extra == "{extra}"'
    return [r.split(";", 1)[0].strip() for r in requires if marker in r.replace("'", '"')]


def install_hint(extra: str) -> str:
    """A command that installs the extra into this environment: its own requirements (works for an install from a
    checkout or a wheel alike), and the form that installs morphlake with it."""
    needs = extra_requirements(extra)
    direct = f"pip install {' '.join(shlex.quote(r) for r in needs)}" if needs else None
    whole = f"pip install '<morphlake checkout or wheel>[{extra}]'"
    return f"install the {extra} extra: {direct} (or {whole})" if direct else f"install the {extra} extra: {whole}"
