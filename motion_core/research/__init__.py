"""Research probes of the built-in models: measurements that explain why a pretraining run did or did not work, kept
runnable because FINDINGS.md (motion_core/toy/FINDINGS.md) quotes their figures and commands.

Nothing in the product (nodes, the engine, the CLI, the bench, the pretraining commands) imports this package; a test
checks that. Each module is a command: ``python -m motion_core.research.<name> --help``.
- ``first_step``: what a model can say at its first sampling step, from pure noise.
- ``caption_reliance``: how much the denoising loss rises when one caption word is swapped.
- ``prompt_control``: who sets a sample's path, the prompt's motion words or the starting noise.
- ``camera/``: a camera-move world (every pixel moves) and a short text-to-video probe on it.
"""
