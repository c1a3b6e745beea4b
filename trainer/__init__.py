"""The training engine: config, data, models, LoRA network, loop, saving, CLI.

Layers, each importing only those below it (tests/test_layout.py keeps it so):
    __main__, api, presets, launch, cli_progress    the doors: CLI, GUI, files of presets
    run/                                            one training run: loop, step, saves, state
    sampling/                                       sample prompts and preview images
    plan/  data/  models/  network/  optim/  text/  the parts a run is made of
    events, files, transfer                         leaves anyone may use
    config/                                         the one schema; imports nothing else

Importing the package first sets how idle CPU threads wait, before anything imports torch
(libgomp reads it once, at load): they sleep at once only when the run's threads outnumber
the cores, from OMP_NUM_THREADS and a launcher's process count; `python -m trainer` decides
again from the preset (trainer/run/cpu_threads.py; a value set in the environment is kept).
"""

from trainer.run.cpu_threads import apply_cpu_thread_defaults

apply_cpu_thread_defaults()
