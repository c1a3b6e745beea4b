"""The training engine: config, data, models, LoRA network, loop, saving, CLI.

Importing the package first sets how idle CPU threads wait, before anything imports torch
(libgomp reads it once, at load): they sleep instead of spinning when the CPU is already
busy with other work (trainer/cpu_threads.py; a value set in the environment is kept).
"""
from .cpu_threads import apply_cpu_thread_defaults

apply_cpu_thread_defaults()
