import tempfile

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

# property tests draw the same examples on every run: a test that passes in CI passes for everyone; and
# hypothesis keeps its caches in a temporary folder, not in the repository
settings.register_profile("deterministic", derandomize=True, database=None)
settings.load_profile("deterministic")
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="hypothesis-"))

from tokenshift import organism
from tokenshift.organism import architecture, rl, sft
from tokenshift.organism.tokenizer import TokenizerConfig, build_tokenizer

TINY_SHAPE = architecture.ModelShape(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
TINY_RL = rl.RLConfig(steps=2, prompts_per_step=2, samples_per_prompt=4, checkpoint_every=1, eval_every=2,
                      eval_problems=2, eval_samples=2)
TINY_TOKENIZER = TokenizerConfig(demonstrations=300, other_writer=100)
TINY_ORGANISM = organism.OrganismConfig(
    max_new_tokens=16, tokenizer=TINY_TOKENIZER, shape=TINY_SHAPE,
    base=sft.SFTConfig(steps=3, batch_size=8, warmup_steps=1), simplerl=TINY_RL, dapo=TINY_RL,
    sft_offpolicy=sft.SFTConfig(steps=2, batch_size=8, source="other_writer"),
    sft_rejection=sft.SFTConfig(steps=2, batch_size=8, rollouts=8, source="own_correct"),
)


@pytest.fixture(scope="session", autouse=True)
def outputs_outside_the_repo(tmp_path_factory):
    """Tests never write into the repository: the cache, figures and executed notebooks go to temporary folders
    (notebook kernels and launcher processes inherit the environment)."""
    root = tmp_path_factory.mktemp("outputs")
    with pytest.MonkeyPatch.context() as mp:
        for var, folder in (("TOKENSHIFT_CACHE", "cache"), ("TOKENSHIFT_FIGURES", "figures"),
                            ("TOKENSHIFT_RUNS", "runs")):
            mp.setenv(var, str(root / folder))
        yield root


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer(TINY_TOKENIZER)


@pytest.fixture
def tiny_model(tokenizer):
    return architecture.new_model(tokenizer, TINY_SHAPE, seed=0).eval()
