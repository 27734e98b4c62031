"""tokenshift: token-level analysis of distributional shifts between a base LLM and its RLVR-tuned version.

Sub-packages, each using only those listed before it:
- ``core``: the artifact cache and its behaviour versions, seeds, progress, launcher processes, paths;
- ``models``: loading any causal LM, the one decoding loop, teacher-forced scoring, divergences and metrics;
- ``problems``: problem sets, benchmark data, answer checking, verdicts, avg@k;
- ``organism``: the CPU model organism (task, tokenizer, network, SFT and RL trainers, its construction);
- ``analyses``: shift tables, their summaries, cross-sampling sweeps, the token viewer;
- ``suite``: profiles, pairs and studies, the notebook runner, findings, plotting, the command line;
- ``sections``: the paper's findings as the notebooks tell them (tables, verdicts, figures per notebook).

The calls a user needs are here, imported on first use (``import tokenshift`` loads no model code)::

    import tokenshift as ts
    study = ts.for_profile("default")                 # a profile's pairs, problems and settings
    table = ts.shift_table(base, tuned, problems, ts.SamplingConfig(), ts.ScoringConfig())
    sweep = ts.sweep(base, tuned, problems, ts.SweepConfig(eps_grid=(float("inf"), 0.1)))
    mixed = ts.cross_sample(base_model, tuned_model, problems.prompts, ts.Decoding.for_problems(problems, 256),
                            eps=0.1)                     # one cross-sampled response per prompt, uncached
"""

__version__ = "0.1.0"

# name -> the module that defines it
EXPORTS = {"load_model": "models.loading", "Placement": "models.loading", "Decoding": "models.sampling",
           "decode": "models.sampling", "sample": "models.sampling", "cross_sample": "analyses.cross_sampling",
           "math_problems": "suite.pairs", "for_profile": "suite.study", "preset": "suite.profiles",
           "SamplingConfig": "analyses.reference_responses", "ScoringConfig": "analyses.shift_scores",
           "responses": "analyses.reference_responses", "scores": "analyses.shift_scores",
           "shift_table": "analyses.shifts", "SweepConfig": "analyses.cross_sampling",
           "sweep": "analyses.cross_sampling"}
__all__ = ["versions", *EXPORTS]


def __getattr__(name: str):
    if name not in EXPORTS:
        raise AttributeError(f"module 'tokenshift' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{EXPORTS[name]}", __name__), name)


def versions() -> dict[str, str]:
    """Versions of what a result depends on, for notebooks to print at the top."""
    import platform

    import numpy
    import polars
    import torch
    import transformers

    return {"tokenshift": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": numpy.__version__, "polars": polars.__version__,
            "threads": str(torch.get_num_threads())}
