"""Benchmarks on the public data sets in ``../shared/data`` (never copied here).

``python -m bench all|intent|sentiment|spikes|recommend|lm|gan|retrieval|serving [--quick]``
writes ``bench/results/<area>.json`` and regenerates ``bench/results/README.md``.
Benchmarks are not tests: nothing here runs under pytest.
"""
