"""The Utilities: resize, merge, extract, verify LoRA files, and caption a dataset.

What Kohya users do between trainings, with the option names of sd-scripts' own scripts
(resize_lora.py, merge_lora.py / svd_merge_lora.py, extract_lora_from_models.py,
tag_images_by_wd14_tagger.py): `python -m trainer.tools resize|merge|extract|verify|caption`.
Each command is a function here too (the GUI's Utilities tab calls them through
trainer.api). LoRA files are read module by module, and extract reads both models one layer
at a time (weights.py), so memory stays about one module plus the output; every file
written goes through trainer.files (atomic).

Imports trainer.files, trainer.network (the Kohya file writer and names) and
trainer.models (loading base models, the single-file layout, Hugging Face downloads);
nothing imports this package but trainer.api. torch, onnxruntime and transformers load on
use inside the commands.
"""
