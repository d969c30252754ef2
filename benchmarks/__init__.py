"""The project's benchmarks: every figure the README quotes, measured side by side in one run.

``python -m benchmarks`` (or ``make bench``) runs them all and writes
``reports/benchmarks.json`` and ``reports/benchmarks.md``; see ``--help``.
"""
