"""The model organism: a verifiable task, its tokenizer and network, the trainers (SFT, RLVR) that grow a
tiny base model and its tuned descendants on a CPU, and the cached construction of the whole pair."""

from .base import base_model
from .build import LABELS, RL_NAMES, SFT_NAMES, Organism, OrganismConfig, build, rl_run, rl_runs, sft_control
from .storage import run_log

__all__ = ["LABELS", "RL_NAMES", "SFT_NAMES", "Organism", "OrganismConfig", "base_model", "build", "rl_run",
           "rl_runs", "run_log", "sft_control"]
