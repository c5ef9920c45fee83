"""Benchmarks, one module per subcommand (``python -m motion_core.bench <name>``).

A benchmark module defines ``main(argv) -> int`` and a one-line docstring; it prints a human table and, as its
last line, one JSON object of its figures. Modules are found by name, so adding one needs no registry edit.
"""
