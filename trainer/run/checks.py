"""Every check that needs no model, run at once before anything loads.

The settings (trainer.config), the dataset (trainer.data.resolved), this machine and its
paths, the model file and the optimizer's arguments (trainer.run.preflight) and the state
to resume from (trainer.run.state) are checked together, so that one answer lists every
problem: a bad output_name no longer hides a missing model and dataset, and a bad
optimizer argument is no longer found after the latents are cached. A run already writing
to the same output (its lock, trainer.run.output_lock) is one of the problems. The run
(trainer.run.train) and the dry run (`python -m trainer --dry-run`) call the same
`check_before_loading`, so the dry run refuses what the run would, in the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from trainer.config import Problem, TrainingConfig
from trainer.config.secrets import redact_text, secret_values
from trainer.data.folders import DatasetError
from trainer.data.resolved import ResolvedDataset, resolve_dataset
from trainer.plan.training_plan import Plan, plan_dataset
from trainer.run.output_lock import holder_problem
from trainer.run.preflight import run_preflight


@dataclass
class Checked:
    """The outcome: the settings the run uses (a dataset TOML's applied), the dataset and
    its plan (None when the dataset cannot be used), every problem, every warning."""

    cfg: TrainingConfig
    data: ResolvedDataset | None
    plan: Plan | None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def message(self) -> str:
        """The problems as a person reads them, one per line, tokens shown as ***."""
        text = "Fix these settings first:\n" + "\n".join(f"- {p}" for p in self.problems)
        return redact_text(text, secret_values(self.cfg))


def check_before_loading(
    cfg: TrainingConfig,
    num_processes: int | None = None,
    config_problems: Sequence[Problem] = (),
    is_main: bool = True,
) -> Checked:
    """Check `cfg` as far as it can be without a model. `config_problems`: what the settings'
    own validation refused (then `cfg` holds the defaults in their place); checks of those
    settings are not repeated. `num_processes`: the processes sharing each epoch (the plan's
    steps), by default the config's. `is_main`: the process that takes the output's lock
    (the others do not look at it: the main one may hold it already)."""
    problems = list(config_problems)
    refused = {p.key for p in problems}
    data = plan = None
    try:
        data = resolve_dataset(cfg)  # once: a dataset TOML's batch size, resolution, ... applied
        cfg = data.cfg  # what the plan, preflight and the run read from here on
        plan = plan_dataset(data, num_processes=num_processes)
    except DatasetError as exc:
        if exc.key not in refused:
            problems.append(Problem(exc.key, str(exc)))
    found, warnings = run_preflight(cfg)
    if cfg.resume.strip() and data is not None and plan is not None:
        from trainer.run.state import check_resume  # torch and safetensors: only for a resume

        resume_problems, notes = check_resume(cfg, data, plan.total_steps)
        found += resume_problems
        warnings += notes
    held = holder_problem(cfg) if is_main else None  # another run writing here now (rank 0 locks)
    if held:
        found.append(Problem("output_name", held))
    problems += [p for p in found if p.key not in refused]
    return Checked(cfg, data, plan, list(dict.fromkeys(problems)), warnings)  # preflight reads the state too
