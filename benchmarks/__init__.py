"""One benchmark across the five papers and against zuko, nflows and normflows: ``python -m
benchmarks``.

Lives outside the paper folders because it imports all of them (a paper folder never imports
another).
"""
