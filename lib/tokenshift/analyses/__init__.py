"""The paper's analyses on any pair: per-token shift tables and their summaries, cross-sampling sweeps, and
the token viewer."""
