"""Datasets: the generators of the embedded benchmarks and dataset configs applied to training recipes."""
