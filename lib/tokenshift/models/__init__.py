"""Any causal LM, loaded and run: loading (paths, hub ids, dtypes), the one decoding loop (sampling and
cross-sampling's lockstep), teacher-forced scoring of a pair, the divergences and per-position metrics, and
the responses schema."""
