"""tokenshift: token-level analysis of distributional shifts between a base LLM and its RLVR-tuned version."""

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
