"""Runnable experiments on the lab (issue 23): `python -m experiments.NAME [--smoke] [--out DIR]`.

Each brings pools up with the experiment API (`netctl.experiment`, docs/experiments.md),
prints a table and saves a PNG plot. `--smoke` is a small run in seconds that `make test` runs
(tests/experiments/test_experiments_smoke.py); its figures are not the experiment's.
"""
