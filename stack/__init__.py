"""The compose topology started natively, from Debian and Python packages, on loopback.

``python -m stack up`` / ``python -m stack down`` (``make stack-up`` / ``make stack-down``): see
:mod:`stack.native`. Independent of ``pipeline/`` except for the demo-data command it runs.
"""
