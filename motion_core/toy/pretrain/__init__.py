"""Pretraining of ShapesT2V, the small text-to-video model the pack ships as its embedded default.

Three stages, all seeded: a tiny AutoencoderKL learns the world's frames, its decoder is then refined on the
encoder's posterior means with object pixels weighted (`decoder_stage`), then a UNet3DConditionModel (with a tiny
CLIPTextModel trained alongside) learns text-to-video on VAE latents of procedurally rendered clips of the basic
motions only; held-out motion families are never shown, so customizing them is a real test. The result is saved as
a diffusers folder laid out exactly like ZeroScope, loaded by the ordinary UNet3D backbone loader.

Run: ``python -m motion_core.toy.pretrain --out motion_core/toy/shapes_t2v`` (see ``--help``).
"""
