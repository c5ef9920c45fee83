"""The memory plan before loading: the model's parts on the meta device from config files or safetensors headers give
the plan the loaded model gives; `train --plan` reads no weight; a run that cannot fit is refused before loading;
families that cannot be planned before loading say so and are planned after. Real Wan architectures are checked on
sparse files (a real header, no data on disk)."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from wan_samples import _vae_to_original, write_tiny_wan_files, write_tiny_wan_i2v_files

from motion_core.backbones import load_backbone, save_tiny_diffusers_folder
from motion_core.backbones.loading import plan_backbone
from motion_core.backbones.preload import NoPlanBeforeLoading
from motion_core.backbones.stream_read import CHUNK_BYTES
from motion_core.backbones.wan.tiny import save_tiny_wan_diffusers_folder, save_tiny_wan_i2v_diffusers_folder
from motion_core.errors import ModelLoadError
from motion_core.recipes import get_recipe
from motion_core.training import MemoryPlanError, TrainingConfig, plan_run, step_trace
from motion_core.training.memory_plan import GIB, MIB, MemorySettings, Predictor, WeightFacts
from motion_core.training.preload_plan import plan_before_loading

FREE = 64 * GIB  # a fixed "free memory", so both plans compare the same verdicts


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def wan_files(tmp_path_factory):
    root = write_tiny_wan_files(tmp_path_factory.mktemp("wan_files"))["root"]
    return {"root": root, "vae": root / "wan_tiny_vae.safetensors", "text_encoder": root / "umt5_tiny_fp16.safetensors"}


def _run(recipe="motion_director"):
    recipe = get_recipe(recipe)
    config = TrainingConfig(steps=1, width=16, height=16, frames=5, rank=2)
    return recipe, config, config.resolve(recipe.config)


def _plans(path, **options):
    """(the plan before loading, the plan of the loaded model), each traced afresh."""
    recipe, config, settings = _run()
    step_trace._TRACES.clear()
    before = plan_before_loading(path, options, recipe, config, settings, "cpu", available=FREE)
    step_trace._TRACES.clear()
    loaded = load_backbone(path, device="cpu", **options)
    after = plan_run(loaded, recipe, config, settings, "cpu", available=FREE)
    return before, after, loaded


def _close(a: int, b: int) -> bool:
    return abs(a - b) <= 0.01 * max(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_tiny_wan_folder_plans_before_loading_what_it_plans_once_loaded(tmp_path, dtype):
    folder = save_tiny_wan_diffusers_folder(tmp_path / "wan", seed=0)
    before, after, loaded = _plans(folder, dtype=dtype)
    assert _close(before.parts["weights"], after.parts["weights"])
    assert _close(before.parts["activations"], after.parts["activations"])
    assert before.settings == after.settings and before.device_peak == after.device_peak
    assert before.planned_from == "the folder's config files" and not after.planned_from
    loaded_bytes = WeightFacts.of(loaded).total + WeightFacts.of(loaded).encoders
    assert loaded_bytes <= before.loading_host  # the parts as loaded, plus the largest mapped weights file
    assert "before loading" in before.summary() and "host memory while loading" in before.summary()


@pytest.mark.parametrize(("name", "keep_fp8"), [("wan_tiny_fp8_scaled.safetensors", True),
                                                ("wan_tiny_fp8_scaled.safetensors", False),
                                                ("wan_tiny_fp16.safetensors", False)])
def test_a_tiny_wan_single_file_plans_before_loading_what_it_plans_once_loaded(wan_files, name, keep_fp8):
    options = {"vae": wan_files["vae"], "text_encoder": wan_files["text_encoder"], "dtype": torch.bfloat16,
               "keep_fp8": keep_fp8}
    before, after, loaded = _plans(wan_files["root"] / name, **options)
    assert _close(before.parts["weights"], after.parts["weights"])
    assert _close(before.parts["activations"], after.parts["activations"])
    assert before.device_peak == after.device_peak and before.settings == after.settings
    facts = WeightFacts.of(plan_backbone(wan_files["root"] / name, **options).backbone)
    assert facts == WeightFacts.of(loaded)  # every tensor's dtype, fp8 kept as stored included
    assert ("float8_e4m3fn" in facts.by_dtype) == keep_fp8
    # A streamed load holds the parts as kept plus its one read buffer.
    assert before.loading_host == facts.total + facts.encoders + CHUNK_BYTES


def _same_model(planned, loaded):
    """What the plan reads of a backbone: weights by dtype (encoders included), expert, objective, layout."""
    assert WeightFacts.of(planned) == WeightFacts.of(loaded)
    assert planned.model_info == loaded.model_info and planned.fingerprint() == loaded.fingerprint()
    assert planned.objective.sigma_range == loaded.objective.sigma_range
    assert planned.objective.shift == loaded.objective.shift
    assert planned.first_frame_conditioning == loaded.first_frame_conditioning
    assert planned.planning_shapes(5, 16, 16) == loaded.planning_shapes(5, 16, 16)
    assert (planned.image_encoder is None) == (loaded.image_encoder is None)


@pytest.mark.parametrize(("kind", "expert"), [("clip", "high_noise"), ("concat", "low_noise"),
                                              ("first_frame", "high_noise")])
def test_image_to_video_folders_and_their_experts_plan_as_they_load(tmp_path, kind, expert):
    folder = save_tiny_wan_i2v_diffusers_folder(tmp_path / kind, kind=kind, two_experts=kind == "concat")
    _same_model(plan_backbone(folder, expert=expert).backbone, load_backbone(folder, expert=expert))


def test_image_to_video_files_with_their_clip_vision_file_plan_as_they_load(tmp_path):
    root = write_tiny_wan_i2v_files(tmp_path)["root"]
    files = {"vae": root / "wan_tiny_vae.safetensors", "text_encoder": root / "umt5_tiny_fp16.safetensors"}
    for name, options in (("wan2.1_i2v_480p_tiny_fp8_scaled.safetensors",
                           {"clip_vision": root / "clip_vision_h_tiny.safetensors", "keep_fp8": True}),
                          ("wan2.2_i2v_low_noise_tiny_fp16.safetensors", {})):
        _same_model(plan_backbone(root / name, **files, **options).backbone,
                    load_backbone(root / name, **files, **options))
    with pytest.raises(ModelLoadError, match="CLIP vision"):  # the loader's refusal, made before loading
        plan_backbone(root / "wan2.1_i2v_480p_tiny_fp16.safetensors", **files)


def test_a_zeroscope_style_folder_plans_before_loading_too(tmp_path):
    folder = save_tiny_diffusers_folder(tmp_path / "unet3d", "unet3d")
    before, after, _ = _plans(folder, dtype=torch.float32)
    assert before.parts["weights"] == after.parts["weights"]
    assert before.parts["activations"] == after.parts["activations"]


def test_a_family_that_cannot_be_planned_before_loading_says_so(tmp_path):
    folder = save_tiny_diffusers_folder(tmp_path / "animatediff", "animatediff")
    with pytest.raises(NoPlanBeforeLoading, match="animatediff models .* can only be planned once loaded"):
        plan_backbone(folder)


def test_a_config_the_library_will_not_build_falls_back_to_loading_with_a_reason(tmp_path, monkeypatch):
    from diffusers import AutoencoderKLWan

    folder = save_tiny_wan_diffusers_folder(tmp_path / "wan", seed=0)

    def broken(*args, **kwargs):
        raise ValueError("an unknown option")

    monkeypatch.setattr(AutoencoderKLWan, "from_config", broken)
    with pytest.raises(NoPlanBeforeLoading, match="could not be read before loading .ValueError.; loading it says"):
        plan_backbone(folder)


def _no_weight_reads(monkeypatch):
    """Every way the loaders read tensor data raises (headers and config files stay readable)."""
    import diffusers
    import safetensors
    import transformers

    from motion_core.backbones.stream_read import SafetensorsStream

    def refuse(*args, **kwargs):
        raise AssertionError("a weight was read")

    for name in ("read", "read_as", "_read_bytes"):
        monkeypatch.setattr(SafetensorsStream, name, refuse)
    monkeypatch.setattr(safetensors, "safe_open", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(diffusers.ModelMixin, "from_pretrained", classmethod(refuse))
    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(refuse))


def _train(tmp_path, model, *extra):
    from video_samples import sample_frames, write_animated_image

    from motion_core.__main__ import main

    video = write_animated_image(tmp_path / "clip.gif", sample_frames(5, 16, 16), 8)
    out = tmp_path / "pan.safetensors"
    code = main(["train", "--model", str(model), "--video", str(video), "--caption", "a pan", "--steps", "1",
                 "--rank", "2", "--width", "16", "--height", "16", "--frames", "5", "--out", str(out), *extra])
    return code, out


def test_train_plan_prints_the_plan_without_reading_a_weight(tmp_path, wan_files, monkeypatch, capsys):
    folder = save_tiny_wan_diffusers_folder(tmp_path / "wan", seed=0)
    _no_weight_reads(monkeypatch)
    code, out = _train(tmp_path, folder, "--plan")
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "Memory plan (auto, before loading, from the folder's config files)" in printed.out
    assert "host memory while loading" in printed.out and not out.exists()
    code, _ = _train(tmp_path, wan_files["root"] / "wan_tiny_fp8_scaled.safetensors", "--plan", "--vae",
                     str(wan_files["vae"]), "--text-encoder", str(wan_files["text_encoder"]), "--dtype", "fp8-stored")
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "from the files' headers" in printed.out


def test_a_run_that_cannot_fit_is_refused_before_any_weight_is_read(tmp_path, wan_files, monkeypatch, capsys):
    from motion_core.training import auto_memory

    _no_weight_reads(monkeypatch)
    monkeypatch.setattr(auto_memory, "free_bytes", lambda device: 2 * MIB)
    code, out = _train(tmp_path, wan_files["root"] / "wan_tiny_fp16.safetensors", "--vae", str(wan_files["vae"]),
                       "--text-encoder", str(wan_files["text_encoder"]))
    printed = capsys.readouterr()
    assert code == 2 and "a weight was read" not in printed.err
    assert "needs about" in printed.err and "is free" in printed.err and "smaller model" in printed.err
    assert not out.exists()


def test_a_load_the_host_cannot_hold_is_refused_before_loading(wan_files):
    recipe, config, settings = _run()
    options = {"vae": wan_files["vae"], "text_encoder": wan_files["text_encoder"], "dtype": torch.float32}
    with pytest.raises(MemoryPlanError, match="Loading this model needs about .* is free; nothing was loaded"):
        plan_before_loading(wan_files["root"] / "wan_tiny_fp16.safetensors", options, recipe, config, settings,
                            "cpu", available=FREE, host_available=4 * MIB)


def test_processes_loading_side_by_side_need_the_host_to_hold_every_copy(wan_files, monkeypatch):
    """Under accelerate launch each local process loads its own copy: a load that fits once is refused for four."""
    recipe, config, settings = _run()
    options = {"vae": wan_files["vae"], "text_encoder": wan_files["text_encoder"], "dtype": torch.float32}
    path = wan_files["root"] / "wan_tiny_fp16.safetensors"
    once = plan_before_loading(path, options, recipe, config, settings, "cpu", available=FREE, host_available=FREE)
    room = int(once.loading_host * 2)  # two loads' worth with the margin, not four
    plan_before_loading(path, options, recipe, config, settings, "cpu", available=FREE, host_available=room)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(MemoryPlanError, match="4 processes x .*fewer processes on this machine"):
        plan_before_loading(path, options, recipe, config, settings, "cpu", available=FREE, host_available=room)


def test_train_falls_back_to_the_plan_after_loading_and_says_so(tmp_path, capsys):
    folder = save_tiny_diffusers_folder(tmp_path / "animatediff", "animatediff")
    code, _ = _train(tmp_path, folder, "--plan", "--frames", "4")
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "The memory plan is made after loading: animatediff models" in printed.out
    assert "Memory plan (auto)" in printed.out


# ---- real architectures, on sparse files ---------------------------------------------------------------------


def _sparse_file(path, layout) -> int:
    """A .safetensors file of ``layout`` [(name, dtype, shape)] with a real header and no data written (a sparse
    file of the right size: a 14B model costs no disk)."""
    from motion_core.bench._load_memory import header_table

    table, offset = header_table(layout)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(table)) + table)
        out.truncate(8 + len(table) + offset)
    return 8 + len(table) + offset


def _transformer_layout(variant, fp8: bool):
    from motion_core.bench._load_memory import _layout

    layout = _layout(variant, None)
    if fp8:
        return layout
    return [(n, torch.bfloat16, s) for n, d, s in layout if not n.endswith(("scale_weight", "scaled_fp8"))]


@pytest.fixture(scope="module")
def real_encoders(tmp_path_factory):
    """Sparse Wan 2.1 VAE (fp32) and UMT5-XXL (bf16) files in ComfyUI's layouts."""
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    from motion_core.backbones.wan import CONFIGS_DIR

    root = tmp_path_factory.mktemp("real_wan")
    with torch.device("meta"):
        vae = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(str(CONFIGS_DIR / "wan_vae" / "wan2.1")))
        umt5 = UMT5EncoderModel(UMT5Config(**json.loads((CONFIGS_DIR / "umt5_xxl" / "config.json").read_text())))
    vae_state = _vae_to_original(vae.state_dict(), False, vae.config.num_res_blocks)
    _sparse_file(root / "wan_2.1_vae.safetensors", [(k, torch.float32, tuple(v.shape)) for k, v in vae_state.items()])
    _sparse_file(root / "umt5_xxl_bf16.safetensors", [(k, torch.bfloat16, tuple(v.shape))
                                                      for k, v in umt5.state_dict().items()
                                                      if k != "encoder.embed_tokens.weight"])
    return root


@pytest.mark.parametrize("variant", ["wan2.1_t2v_1.3b", "wan2.1_t2v_14b"])
def test_real_wan_files_plan_before_loading_as_the_meta_loaded_model_plans(tmp_path, real_encoders, variant):
    from motion_core.bench.memory import build_backbone

    model = tmp_path / f"{variant}_bf16.safetensors"
    _sparse_file(model, _transformer_layout(variant, fp8=False))
    planned = plan_backbone(model, vae=real_encoders / "wan_2.1_vae.safetensors", dtype=torch.bfloat16,
                            text_encoder=real_encoders / "umt5_xxl_bf16.safetensors", keep_fp8=False)
    meta_loaded = build_backbone(variant, blocks=None, device="meta", dtype=torch.bfloat16)
    assert planned.backbone.model_info["arch"] == variant and planned.backbone.denoiser.device.type == "meta"

    def plan(backbone):
        step_trace._TRACES.clear()
        return Predictor(backbone, get_recipe("motion_director"), frames=17, width=256, height=256, rank=16,
                         alpha=16.0, dropout=0.0, device=torch.device("cuda")).plan(MemorySettings(True))

    before, after = plan(planned.backbone), plan(meta_loaded)
    assert before.parts["weights"] == after.parts["weights"] and before.blocks == after.blocks
    assert before.parts["activations"] == after.parts["activations"] and before.tokens == after.tokens
    assert before.parts["adapters"] == after.parts["adapters"]
    # UMT5-XXL in bf16 (5.7B parameters) and the Wan 2.1 VAE (127M) wait on the host: 11.3 GB
    assert 11.0e9 < WeightFacts.of(planned.backbone).encoders < 11.8e9


# Host peak growth while loading, over the file size, measured by `bench memory --cases none` (docs/benchmarks.md):
# Wan 2.1 1.3B scaled-fp8 file, kept in fp8 and widened to bf16.
MEASURED_LOADING = {True: 1.03, False: 2.01}


@pytest.mark.parametrize("keep_fp8", [True, False])
def test_the_predicted_loading_peak_of_a_real_fp8_file_matches_the_measured_one(tmp_path, real_encoders, keep_fp8):
    model = tmp_path / "wan2.1_t2v_1.3B_fp8_scaled.safetensors"
    size = _sparse_file(model, _transformer_layout("wan2.1_t2v_1.3b", fp8=True))
    planned = plan_backbone(model, vae=real_encoders / "wan_2.1_vae.safetensors", dtype=torch.bfloat16,
                            text_encoder=real_encoders / "umt5_xxl_bf16.safetensors", keep_fp8=keep_fp8)
    facts = WeightFacts.of(planned.backbone)
    assert planned.loading_host == facts.total + facts.encoders + CHUNK_BYTES
    denoiser_alone = (facts.total + CHUNK_BYTES) / size  # what the bench loads: the transformer file alone
    assert abs(denoiser_alone - MEASURED_LOADING[keep_fp8]) < 0.05 * MEASURED_LOADING[keep_fp8]
