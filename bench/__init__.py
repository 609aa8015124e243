"""Benchmarks (`make bench`, `python -m bench [NAME ...]`): results in bench/results/<name>.json."""
