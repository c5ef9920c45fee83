"""motion_core: the engine of the motion-customization node pack.

Reads reference clips, loads video diffusion backbones, injects and stores LoRA adapters, trains motion LoRAs with
the recipes of MotionDirector, VMC, Customize-A-Video, MotionCrafter and NewMove, and samples with LoRA stacks.

It never imports ComfyUI: ComfyUI concerns (progress bars, interrupts, model folders) reach it only as plain
callbacks and paths, so the same code runs from the nodes, the command line and the tests. Modules inside this
package import each other relatively, so it works both as ``motion_core`` and as ``<pack>.motion_core``.
"""

__version__ = "0.1.0"
