"""tokenshift: token-level analysis of distributional shifts between a base LLM and its RLVR-tuned version.

Sub-packages, each using only those listed before it:
- ``core``: the artifact cache and its behaviour versions, seeds, progress, launcher processes, paths;
- ``models``: loading any causal LM, the one decoding loop, teacher-forced scoring, divergences and metrics;
- ``problems``: problem sets, benchmark data, answer checking, verdicts, avg@k;
- ``organism``: the CPU model organism (task, tokenizer, network, SFT and RL trainers, its construction);
- ``analyses``: shift tables, their summaries, cross-sampling sweeps, the token viewer;
- ``suite``: profiles, pairs and studies, the notebook runner, findings, plotting, the command line.
"""

__version__ = "0.1.0"


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
