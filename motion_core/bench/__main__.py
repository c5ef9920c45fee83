"""Dispatch ``python -m motion_core.bench <name> [args]`` to the module ``motion_core.bench.<name>``.

A benchmark that cannot run as asked (no GPU for ``bench gpu``, a bad option) raises InvalidInputError, whose
message says what to do; it is printed as one line with exit status 2, like an argparse error, not as a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] not in names:
        print(f"usage: python -m motion_core.bench {{{','.join(names)}}} [options]", file=sys.stderr)
        return 2
    from ..errors import InvalidInputError

    module = importlib.import_module(f"{__package__}.{argv[0]}")
    try:
        return int(module.main(argv[1:]) or 0)
    except InvalidInputError as error:
        print(f"python -m motion_core.bench {argv[0]}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
