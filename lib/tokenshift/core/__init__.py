"""Foundations every other part stands on: the artifact cache and the behaviour versions that key it, seeds,
progress, data parallelism over a launcher's processes, and where things are kept."""
