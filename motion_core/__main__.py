"""``python -m motion_core <command>``: command-line entry (train, sample)."""

from __future__ import annotations

import argparse
import sys

from .errors import MotionCoreError


def main(argv=None) -> int:
    from .cli import sample, train

    parser = argparse.ArgumentParser(prog="python -m motion_core", description="Motion LoRA engine")
    commands = parser.add_subparsers(dest="command", required=True)
    train.add_parser(commands)
    sample.add_parser(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except MotionCoreError as err:
        from .training.distributed import is_main_process

        if is_main_process():  # under accelerate launch every process stops; one says why
            print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
