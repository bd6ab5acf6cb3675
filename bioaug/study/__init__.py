"""The papers' studies as commands: sweeps, class-level bias, invariance, fusion, the demo.

Orchestrates the stages (train → embed → evaluate) and adds only the analyses that belong
to the studies themselves:

- :mod:`~bioaug.study.sweep` / :mod:`~bioaug.study.sweep_config` /
  :mod:`~bioaug.study.keypath` — ``bioaug sweep``: a grid of protocol parameters (key paths
  such as ``views[*].steps.stain_jitter.p``) × seeds, resumable, one job per point;
- :mod:`~bioaug.study.results`, :mod:`~bioaug.study.bias`, :mod:`~bioaug.study.bias_report`
  — ``results.csv`` and ``bioaug sweep report``: per-class accuracy, trends, inter-class
  bias matrix (Bendidi et al. 2023);
- :mod:`~bioaug.study.invariance_metric`, :mod:`~bioaug.study.invariance_library`,
  :mod:`~bioaug.study.invariance` — ``bioaug invariance`` (Ericsson et al. 2022);
- :mod:`~bioaug.study.compare` — whole protocols compared over seeds (+ raw pixels,
  supervised backbones, fused embeddings);
- :mod:`~bioaug.study.demo` — ``bioaug demo`` on the synthetic BBBC021 twin;
- :mod:`~bioaug.study.stages` — the resumable stage runners they share;
- :mod:`~bioaug.study.standins` — offline stand-ins for natural-image datasets.

See ``docs/studies.md`` for how each paper figure maps to a command.
"""
