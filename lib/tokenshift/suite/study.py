"""What a profile studies: its model pairs and problems (``pairs``), and the shift tables and cross-sampling
sweeps that the notebooks analyse, set up once from the profile's ``shifts`` section.

Notebooks 01, 02 and 04 analyse the same reference responses and scores because they get them from here,
not by repeating the same parameters; notebook 03 samples with the same settings.

    study = for_profile("default")
    tables = study.tables()            # tuned model name -> per-token shift table (cached)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import polars as pl

from ..analyses import criticality, cross_sampling_stats, reference_responses, shift_scores, shifts
from ..analyses.cross_sampling import SweepConfig, capped, sweep
from ..analyses.cross_sampling_stats import DIRECTIONS
from ..core import parallel
from ..models.loading import runtime
from ..organism.problems import OrganismProblems
from ..problems.problem_sets import ProblemSet
from . import pairs as pairs_mod
from . import profiles
from .pairs import Pairs
from .profiles import ShiftSetup


@dataclass
class Study:
    profile: str
    setup: ShiftSetup
    pairs: Pairs
    problems: ProblemSet
    show_progress: bool = True
    _tables: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def labels(self) -> dict[str, str]:
        return self.pairs.labels

    @property
    def max_new_tokens(self) -> int:
        return self.setup.max_new_tokens or self.pairs.max_new_tokens

    def sampling(self) -> reference_responses.SamplingConfig:
        return sampling_config(self.setup, self.max_new_tokens)

    def scoring(self) -> shift_scores.ScoringConfig:
        return scoring_config(self.setup)

    def table(self, name: str) -> pl.DataFrame:
        """Tuned model ``name`` against the base on its own responses: one row per (response, position)."""
        if name not in self._tables:
            self._tables[name] = shifts.shift_table(self.pairs.base, self.pairs.tuned[name], self.problems_for(name),
                                                    self.sampling(), self.scoring(),
                                                    show_progress=self.show_progress)
        return self._tables[name]

    def tables(self, names: list[str] | None = None) -> dict[str, pl.DataFrame]:
        """The shift table of every tuned model (or of ``names``), by name."""
        return {name: self.table(name) for name in (names or self.pairs.tuned)}

    def own_table(self, name: str = "base") -> pl.DataFrame:
        """A model against itself on its own samples (JS is 0 everywhere): how uncertain it is where it writes."""
        path = self.pairs.base if name == "base" else self.pairs.tuned[name]
        return shifts.shift_table(path, path, self.problems, self.sampling(), self.scoring(),
                                  show_progress=self.show_progress)

    def checkpoint_tables(self, name: str) -> list[tuple[int, pl.DataFrame]]:
        """(step, table) for each saved checkpoint of RL run ``name`` against the base, all on the final model's
        responses, so every checkpoint is measured at the same positions; empty without checkpoints."""
        asked = self.problems_for(name)
        return [(step, shifts.shift_table(self.pairs.base, path, asked, self.sampling(), self.scoring(),
                                          reference=self.pairs.tuned[name], show_progress=self.show_progress))
                for step, path in self.pairs.checkpoints(name)]

    def sweep_config(self, eps_grid, js_top_p: float, top_p: float | None = None) -> SweepConfig:
        """Cross-sampling with the study's sampling settings (``top_p`` overrides its nucleus), over ``eps_grid``,
        switching on ``js_top_p`` JS."""
        return sweep_config(self.setup, self.max_new_tokens, eps_grid, js_top_p, top_p)

    def benchmark_problems(self, benchmark: str = "") -> ProblemSet:
        """The study's problems, or as many of another of the profile's benchmarks ("": the study's own)."""
        if not benchmark or benchmark == self.setup.benchmark:
            return self.problems
        return self.pairs.problems(self.setup.n_problems or None, self.setup.seed, benchmark)

    def problems_for(self, name: str, benchmark: str = "") -> ProblemSet:
        """``benchmark_problems`` as tuned model ``name``'s pair is asked: in its own prompt, template, answer
        format and grading where the profile gives it them."""
        if name not in self.pairs.own_problems:
            return self.benchmark_problems(benchmark)
        return self.pairs.problems(self.setup.n_problems or None, self.setup.seed,
                                   benchmark or self.setup.benchmark or None, name)

    def sweep(self, name: str, direction: str, config: SweepConfig, benchmark: str = "") -> pl.DataFrame:
        """Cross-sampling of RL model ``name`` with the base, forward (base decodes, RL intervenes) or reverse, on
        the study's problems (or ``benchmark``'s), as that pair is asked; cached."""
        return _sweep_job(self._job((name, direction), config, benchmark))

    def sweeps(self, config: SweepConfig, benchmark: str = "", bisection_steps: int = 0,
               workers: int = 1) -> dict[tuple[str, str], pl.DataFrame]:
        """(RL model, direction) -> its sweep over ``config.eps_grid``, then refined by up to ``bisection_steps``
        thresholds between the grid's points where the smallest sufficient budget lies
        (``cross_sampling_stats.bisect_budget``; each threshold cached on its own). ``workers`` sweeps run at
        once on a CPU, each in its own process (the rows are the same with any number)."""
        keys = [(name, d) for name in self.pairs.rl_names for d in DIRECTIONS]
        out = dict(zip(keys, self._run([self._job(key, config, benchmark) for key in keys], workers)))
        if bisection_steps:
            refs = cross_sampling_stats.references(out)
            jobs = [self._job(key, config, benchmark, cross_sampling_stats.start_and_goal(refs, *key)[1],
                              bisection_steps) for key in keys]
            out = dict(zip(keys, self._run(jobs, workers)))
        return out

    def capped_sweeps(self, config: SweepConfig, eps: dict[tuple[str, str], float], caps,
                      benchmark: str = "", workers: int = 1) -> dict[tuple[str, str], pl.DataFrame]:
        """(RL model, direction) -> the divergence rule at ``eps[model, direction]`` capped at each of ``caps``
        handovers per response."""
        jobs = [self._job(key, dataclasses.replace(config, eps_grid=(e,), rules=tuple(map(capped, caps))), benchmark)
                for key, e in eps.items()]
        return dict(zip(eps, self._run(jobs, workers)))

    def control_sweeps(self, config: SweepConfig, eps: dict[tuple[str, str], float], benchmark: str = "",
                       workers: int = 1) -> dict[tuple[str, str], pl.DataFrame]:
        """(RL model, direction) -> the divergence rule at ``eps[model, direction]`` with the two controls that
        spend its budget elsewhere: random steps where the models disagree (a second pass, its odds scaled so its
        changed tokens match the divergence rule's: ``matched_scale``), and the base's highest-entropy steps
        (the base is the primary forward, the intervention reverse; not with engines, which list top tokens
        only)."""
        entropy = {"forward": ("entropy, primary",), "reverse": ("entropy, intervention",)}
        at = lambda key, rules: dataclasses.replace(config, eps_grid=(eps[key],), rules=rules)  # noqa: E731
        first = dict(zip(eps, self._run([self._job(key, at(key, (
            "divergence", "random, divergent", *(entropy[key[1]] if config.method != "engine" else ()))), benchmark)
            for key in eps], workers)))
        # the restricted control's second pass, its odds scaled so its changed tokens match the divergence rule's
        scaled = {key: f"random, divergent x{cross_sampling_stats.matched_scale(first[key], eps[key]):g}"
                  for key in eps}
        second = dict(zip(eps, self._run([self._job(key, at(key, ("divergence", scaled[key])), benchmark)
                                          for key in eps], workers)))
        return {key: pl.concat([first[key].filter(pl.col("rule") != "random, divergent"),
                                second[key].filter(pl.col("rule") == scaled[key])]) for key in eps}

    def sparse_bars(self, sweeps: dict[tuple[str, str], pl.DataFrame]) -> dict[tuple[str, str], float]:
        """The sparse bar per RL model and direction, in % of steps: on the organism 1.5 x the share of decision
        positions in the responses the primary writes alone (``cross_sampling_stats.BAR_PER_DECISION``); for
        real pairs, whose decisions nobody labelled, the paper's largest budget (``SPARSE``)."""
        if not isinstance(self.problems, OrganismProblems):
            return dict.fromkeys(sweeps, cross_sampling_stats.SPARSE)
        return {(name, direction): 100 * cross_sampling_stats.BAR_PER_DECISION
                * criticality.decision_share(cross_sampling_stats.alone(frame), self.problems_for(name))
                for (name, direction), frame in sweeps.items()}

    def prepare(self, notebooks: dict[str, dict]) -> None:
        """Compute, into the cache, every table the ``notebooks`` (name -> its parameters) read, as they ask for
        them, so that they then only read them; under a launcher the ranks share each table's work units. Not
        notebook 05: its RL runs are its own experiment."""
        organism = isinstance(self.problems, OrganismProblems)  # 01's controls check the organism's base too
        if "00_model_organism" in notebooks or ("01_sparsity" in notebooks and organism):
            self.own_table("base")
        self.tables()
        for name in self.pairs.tuned if "01_sparsity" in notebooks else []:  # RL checkpoints, SFT dose points
            self.checkpoint_tables(name)
        cross = notebooks.get("03_cross_sampling")
        if cross is None:
            return
        benchmark = cross["benchmark"]
        config = self.sweep_config(cross["eps_grid"], cross["js_top_p"])
        sweeps = self.sweeps(config, benchmark, cross["bisection_steps"])
        at = cross_sampling_stats.cap_thresholds(cross_sampling_stats.budget_table(sweeps), config.eps_grid)
        self.capped_sweeps(config, at, cross["caps"], benchmark)
        if cross["controls"]:  # at the budgets the verdicts examine, as notebook 03 finds them
            gaps = cross_sampling_stats.recovered_gaps(sweeps, seed=self.setup.seed)
            self.control_sweeps(config, cross_sampling_stats.examined(gaps, self.sparse_bars(sweeps)), benchmark)
        if cross["robustness_top_p"] < 1:
            top_p = cross["robustness_top_p"]
            self.sweeps(self.sweep_config(cross["robustness_eps_grid"], js_top_p=top_p, top_p=top_p), benchmark)

    def _job(self, key: tuple[str, str], config: SweepConfig, benchmark: str, goal=None,
             bisection_steps: int = 0) -> tuple:
        base, tuned = self.pairs.base, self.pairs.tuned[key[0]]
        primary, intervention = {"forward": (base, tuned), "reverse": (tuned, base)}[key[1]]
        return (primary, intervention, self.problems_for(key[0], benchmark), config, key[1], goal, bisection_steps,
                self.show_progress)

    @staticmethod
    def _run(jobs: list[tuple], workers: int) -> list[pl.DataFrame]:
        # worker processes on a CPU only, outside a launcher: a GPU's models stay in the process that holds the
        # GPU, and a launcher's ranks already share each sweep's work units
        alone_on_cpu = runtime()["device"] == "cpu" and parallel.current().world == 1
        return parallel.in_processes(_sweep_job, jobs, workers if alone_on_cpu else 1)


def _sweep_job(job: tuple) -> pl.DataFrame:
    """One (model, direction)'s sweep (cached), then, given a goal, its bisection toward it; run by a worker or
    in this process."""
    primary, intervention, problems, config, direction, goal, bisection_steps, show_progress = job
    frame = sweep(primary, intervention, problems, config, show_progress=show_progress)
    if goal is None:
        return frame
    one = lambda eps: sweep(primary, intervention, problems, dataclasses.replace(config, eps_grid=(eps,)),  # noqa: E731
                            show_progress=show_progress)
    return cross_sampling_stats.bisect_budget(frame, goal, direction, one, bisection_steps)


# A ``ShiftSetup`` as the configs of the work it sets up: one translation for the notebooks (through ``Study``)
# and the command line, so that the same settings give the same cache entries.
def sampling_config(setup: ShiftSetup, max_new_tokens: int) -> reference_responses.SamplingConfig:
    return reference_responses.SamplingConfig(
        samples_per_problem=setup.samples_per_problem, temperature=setup.temperature, top_p=setup.top_p,
        max_new_tokens=max_new_tokens, seed=setup.seed, prompts_per_unit=setup.prompts_per_unit,
        batch_size=setup.sample_batch_size, engine=setup.engine)


def scoring_config(setup: ShiftSetup) -> shift_scores.ScoringConfig:
    return shift_scores.ScoringConfig(js_top_p=setup.js_top_p, batch_size=setup.score_batch_size,
                                      responses_per_unit=setup.responses_per_unit)


def sweep_config(setup: ShiftSetup, max_new_tokens: int, eps_grid, js_top_p: float, top_p: float | None = None,
                 rules: tuple[str, ...] = SweepConfig.rules) -> SweepConfig:
    return SweepConfig(eps_grid=tuple(float(e) for e in eps_grid), rules=rules,
                       samples_per_problem=setup.samples_per_problem, temperature=setup.temperature,
                       top_p=setup.top_p if top_p is None else top_p, js_top_p=js_top_p,
                       max_new_tokens=max_new_tokens, seed=setup.seed, prompts_per_unit=setup.prompts_per_unit,
                       batch_size=setup.cross_batch_size or setup.sample_batch_size, method=setup.cross_method,
                       drafter=setup.cross_drafter)


def for_profile(profile: str, show_progress: bool = True) -> Study:
    """The profile's study: its pairs (the organism is built on first use), problems and shift setup."""
    setup = profiles.shift_setup(profile)
    pairs = pairs_mod.for_profile(profile, show_progress)
    problems = pairs.problems(setup.n_problems or None, setup.seed, setup.benchmark)
    return Study(profiles.name(profile), setup, pairs, problems, show_progress)
