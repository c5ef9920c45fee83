"""Memory options (backbones/memory.py): fp8 storage of the frozen base and block offload, on the tiny Wan (CPU).

What a CPU can show is checked here: the numbers fp8 storage gives (exactly the fp8-rounded weights, close to full
precision, a quarter of the fp32 bytes), that a LoRA trains on top of it, that offload changes nothing but placement
(same outputs, same gradients, the checkpoint recompute onloads too) and that both come off without a trace. On a
CPU-only machine the onload device IS the CPU, so the GPU's memory figures are the GPU bench's job.
"""

import copy
import json

import pytest
import torch
from video_samples import sample_frames, write_animated_image

from motion_core.backbones import memory
from motion_core.backbones.base import move
from motion_core.backbones.unet3d.tiny import tiny_unet3d_backbone
from motion_core.backbones.wan import CONFIGS_DIR
from motion_core.backbones.wan.tiny import save_tiny_wan_diffusers_folder, tiny_wan_backbone
from motion_core.clips import Clip, ClipSet
from motion_core.errors import InvalidInputError
from motion_core.lora import AdapterSpec, adapter_parameters, add_adapter, remove_adapter
from motion_core.recipes import get_recipe
from motion_core.sampling import SampleRequest, sample_video
from motion_core.training import TrainingConfig, train_motion_lora

FP8 = torch.float8_e4m3fn


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 8, 4096, generator=g)


def _rel_rms(a, b) -> float:
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


def _lora_spec(backbone, name="motion", rank=4):
    from motion_core.backbones.base import find_target_modules
    from motion_core.backbones.wan.backbone import WAN_TARGET_PATTERNS

    targets = tuple(find_target_modules(backbone.denoiser, WAN_TARGET_PATTERNS, "temporal_attn", "wan"))
    return AdapterSpec(name=name, target_modules=targets, rank=rank, alpha=float(rank))


def _state(model):
    """Everything that makes the model what it is: tensors (identity, device, dtype, values), classes, forwards."""
    return {
        "tensors": {n: (id(t), t.device, t.dtype, t.detach().clone()) for n, t in
                    [*model.named_parameters(), *model.named_buffers()]},
        "classes": [type(m) for m in model.modules()],
        "instance_forwards": [n for n, m in model.named_modules() if "forward" in m.__dict__],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
    }


def _assert_same_state(before, after):
    assert before["classes"] == after["classes"]
    assert before["instance_forwards"] == after["instance_forwards"] and before["hooks"] == after["hooks"]
    assert before["tensors"].keys() == after["tensors"].keys()
    for name, (ident, device, dtype, value) in before["tensors"].items():
        a_ident, a_device, a_dtype, a_value = after["tensors"][name]
        assert (ident, device, dtype) == (a_ident, a_device, a_dtype), name
        assert torch.equal(value, a_value), name


# ---- fp8 storage --------------------------------------------------------------------------------------------------
def test_fp8_storage_converts_only_block_linears_and_skips_norms_embeddings_patch_embedding_and_head():
    backbone = tiny_wan_backbone(0)
    names = memory.fp8_linear_names(backbone.denoiser)
    assert len(names) == 20  # 2 blocks x (attn1 q k v o, attn2 q k v o, ffn in, ffn out)
    assert all(n.startswith("blocks.") for n in names)
    kept = [n for n, m in backbone.denoiser.named_modules() if type(m) is torch.nn.Linear and n not in names]
    assert kept and all(n.startswith("condition_embedder.") or n == "proj_out" for n in kept), kept
    storage = memory.Fp8Storage(backbone.denoiser)
    for name, module in backbone.denoiser.named_modules():
        if name in names:
            assert module.weight.dtype == FP8 and module.bias.dtype == torch.float32
        elif isinstance(module, (torch.nn.Linear, torch.nn.Conv3d, torch.nn.LayerNorm)):
            assert module.weight is None or module.weight.dtype == torch.float32, name
    storage.restore()


def test_fp8_storage_output_is_exactly_the_fp8_rounded_model_and_close_to_full_precision():
    """The only error is the weights' rounding: the output equals a float32 model whose Linear weights were replaced
    by their scaled-fp8 values (to float32 rounding). Against full precision the tiny Wan's output moves by 0.41%
    RMS (measured; bf16 for the whole model moves it 0.55%): e4m3 rounds each weight by at most 2^-4 relative,
    about 2-3% RMS per weight, and the residual stream dilutes what two blocks add. 2% leaves room for other seeds
    while catching a wrong scale or a lost layer (tens of percent)."""
    backbone = tiny_wan_backbone(0)
    latents, text = _inputs()
    with torch.no_grad():
        full = backbone.denoise(latents, 500.0, text)
        rounded_model = copy.deepcopy(backbone.denoiser)
    storage = memory.Fp8Storage(backbone.denoiser)
    with torch.no_grad():
        for name in memory.fp8_linear_names(rounded_model):
            layer, stored = rounded_model.get_submodule(name), backbone.denoiser.get_submodule(name)
            layer.weight.copy_(stored.weight.float() * stored.fp8_scale)
        fp8 = backbone.denoise(latents, 500.0, text)
        rounded = rounded_model(hidden_states=latents, timestep=torch.tensor([500.0]), encoder_hidden_states=text,
                                return_dict=False)[0]
        one_layer = backbone.denoiser.blocks[0].ffn.net[2]
        original = {id(layer): weight for layer, weight, _ in storage.layers}[id(one_layer)]
        x = torch.randn(64, one_layer.in_features)
        layer_error = _rel_rms(one_layer(x), x @ original.t() + one_layer.bias)
    storage.restore()
    torch.testing.assert_close(fp8, rounded, rtol=1e-5, atol=1e-5)
    error = _rel_rms(fp8, full)
    assert 0 < error < 0.02, error
    assert 0 < layer_error < 2 ** -4, layer_error  # one Linear: below the worst-case per-weight rounding


def test_fp8_storage_quarters_the_bytes_of_the_converted_weights_and_restores_the_originals():
    backbone = tiny_wan_backbone(0)
    converted = [backbone.denoiser.get_submodule(n) for n in memory.fp8_linear_names(backbone.denoiser)]
    fp32_bytes = sum(m.weight.numel() * m.weight.element_size() for m in converted)
    total_before = memory.linear_weight_bytes(backbone.denoiser)
    before = _state(backbone.denoiser)
    storage = memory.Fp8Storage(backbone.denoiser)
    fp8_bytes = sum(m.weight.numel() * m.weight.element_size() for m in converted)
    assert fp8_bytes * 4 == fp32_bytes == 393_216 * 4  # 2 blocks x (8 x 128x128 + 2 x 128x256)
    # The tiny Wan's 4096-wide text embedder (kept, as diffusers keeps condition_embedder) dominates its Linear
    # bytes; in the real 14B the block Linears are 98.4% of them (test below).
    assert memory.linear_weight_bytes(backbone.denoiser) == total_before - 3 * fp8_bytes
    storage.restore()
    _assert_same_state(before, _state(backbone.denoiser))


def test_fp8_storage_on_the_real_14b_halves_its_bf16_linear_bytes():
    """Built on the meta device (no memory): the share of the 14B's Linear weights that fp8 storage converts."""
    from diffusers import WanTransformer3DModel

    config = WanTransformer3DModel.load_config(str(CONFIGS_DIR / "wan_transformer" / "wan2.1_t2v_14b"))
    with torch.device("meta"):
        model = move(WanTransformer3DModel.from_config(config), dtype=torch.bfloat16).requires_grad_(False)
    bf16 = memory.linear_weight_bytes(model)
    storage = memory.Fp8Storage(model)
    fp8 = memory.linear_weight_bytes(model)
    storage.restore()
    assert len(storage_names := memory.fp8_linear_names(model)) == 400  # 40 blocks x 10 Linears
    assert all(n.startswith("blocks.") for n in storage_names)
    assert round(bf16 / 2**30, 2) == 26.6 and round(fp8 / 2**30, 2) == 13.52  # GiB
    assert 1.9 < bf16 / fp8 < 2.0


def test_lora_injected_after_fp8_storage_stays_full_precision_and_is_the_only_thing_that_learns():
    backbone = tiny_wan_backbone(0)
    storage = memory.Fp8Storage(backbone.denoiser)
    spec = _lora_spec(backbone)
    add_adapter(backbone.denoiser, spec)
    params = adapter_parameters(backbone.denoiser, spec.name)
    assert params and all(p.dtype == torch.float32 and p.requires_grad for p in params)
    base = {n: p.detach().clone() for n, p in backbone.denoiser.named_parameters() if "lora_" not in n}
    assert not any(p.requires_grad for n, p in backbone.denoiser.named_parameters() if "lora_" not in n)
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    latents, text = _inputs()
    target = torch.randn(latents.shape, generator=torch.Generator().manual_seed(7))
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(backbone.denoise(latents, 500.0, text), target)
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params[1::2])  # lora_B gets gradient
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] * 0.97, losses
    for name, value in base.items():
        assert torch.equal(dict(backbone.denoiser.named_parameters())[name], value), name
    remove_adapter(backbone.denoiser, spec.name)
    storage.restore()


def test_fp8_storage_refuses_a_trainable_base():
    backbone = tiny_wan_backbone(0)
    backbone.denoiser.blocks[0].attn1.to_q.weight.requires_grad_(True)
    with pytest.raises(InvalidInputError, match="frozen base"):
        memory.Fp8Storage(backbone.denoiser)
    assert backbone.denoiser.blocks[0].attn1.to_q.weight.dtype == torch.float32


# ---- block offload ------------------------------------------------------------------------------------------------
def _loss_and_grads(backbone, spec_name):
    latents, text = _inputs()
    out = backbone.denoise(latents, 500.0, text)
    loss = out.pow(2).mean()
    loss.backward()
    grads = [p.grad.clone() for p in adapter_parameters(backbone.denoiser, spec_name)]
    return out.detach(), grads


@pytest.mark.parametrize("fp8", [False, True])
def test_block_offload_gives_the_same_outputs_and_lora_gradients_and_recompute_onloads_too(fp8, monkeypatch):
    onloads = []
    entered = memory._Onloaded.__enter__

    def counting(self):
        onloads.append(self.block)
        return entered(self)

    monkeypatch.setattr(memory._Onloaded, "__enter__", counting)
    results = []
    for offload in (False, True):
        backbone = tiny_wan_backbone(0)
        storage = memory.Fp8Storage(backbone.denoiser) if fp8 else None
        plan = memory.BlockOffload(backbone.offload_blocks, "cpu") if offload else None
        spec = _lora_spec(backbone)
        torch.manual_seed(0)  # peft draws lora_A from the global RNG
        add_adapter(backbone.denoiser, spec)
        lora = adapter_parameters(backbone.denoiser, spec.name)
        with torch.no_grad():  # B starts at zero; make the LoRA act so its A gets gradient too
            for p in lora[1::2]:
                p.normal_(0, 0.01, generator=torch.Generator().manual_seed(3))
        if plan:
            plan.place_adapters()
            offloaded = {id(t) for t, _ in plan.homes}
            assert not offloaded & {id(p) for p in lora}  # adapters stay with the accelerator
            assert len(offloaded) == sum(1 for b in backbone.offload_blocks for n, _ in
                                         [*b.named_parameters(), *b.named_buffers()] if "lora_" not in n)
        backbone.enable_gradient_checkpointing()
        results.append(_loss_and_grads(backbone, spec.name))
        if plan:
            plan.restore()
        if storage:
            storage.restore()
    (out_a, grads_a), (out_b, grads_b) = results
    assert torch.equal(out_a, out_b)
    assert len(grads_a) == len(grads_b) and all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    assert all(g.abs().sum() > 0 for g in grads_b)
    # Each of the 2 blocks onloads in the forward AND in the checkpoint's recompute during the backward.
    assert len(onloads) == 4


def test_block_offload_comes_off_without_a_trace():
    backbone = tiny_wan_backbone(0)
    backbone.enable_gradient_checkpointing()
    before = _state(backbone.denoiser)
    block_class = type(backbone.offload_blocks[0])
    plan = memory.BlockOffload(backbone.offload_blocks, "cpu")
    assert all(memory.is_offloaded(b) and isinstance(b, block_class) for b in backbone.offload_blocks)
    plan.restore()
    assert not any(memory.is_offloaded(b) for b in backbone.offload_blocks)
    assert not any("_motion_core_onload_device" in b.__dict__ for b in backbone.offload_blocks)
    _assert_same_state(before, _state(backbone.denoiser))
    backbone.disable_gradient_checkpointing()


def test_block_offload_is_refused_for_a_family_without_blocks_and_twice_on_one_model():
    with pytest.raises(InvalidInputError, match="block_offload off"):
        memory.MemoryPlan(tiny_unet3d_backbone(0), memory.MemoryOptions(block_offload=True), "cpu")
    backbone = tiny_wan_backbone(0)
    plan = memory.BlockOffload(backbone.offload_blocks, "cpu")
    with pytest.raises(InvalidInputError, match="already on"):
        memory.BlockOffload(backbone.offload_blocks, "cpu")
    plan.restore()


# ---- the trainer, config and CLI ------------------------------------------------------------------------------------
def _clip(seed=0):
    g = torch.Generator().manual_seed(seed)
    return Clip(torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8, generator=g), 8.0, "a ball rolls")


def _sample(backbone):
    request = SampleRequest(prompt="a dog runs", steps=2, cfg=2.0, frames=5, width=16, height=16, seed=4)
    return sample_video(backbone, request).frames


def test_training_with_fp8_and_offload_leaves_the_cached_base_model_sampling_exactly_as_before():
    backbone = tiny_wan_backbone(0)
    first = _sample(backbone)
    before = _state(backbone.denoiser)
    config = TrainingConfig(steps=3, width=16, height=16, frames=5, rank=2, base_storage="fp8", block_offload=True)
    result = train_motion_lora(backbone, ClipSet((_clip(),)), "motion_director", config)
    assert result.steps_done == 3 and all(v == v for h in result.history for v in h.values() if isinstance(v, float))
    assert all(t.dtype == torch.float32 for t in result.motion_lora.tensors.values())
    _assert_same_state(before, _state(backbone.denoiser))
    assert torch.equal(_sample(backbone), first)


def test_block_offload_alone_trains_the_same_lora_as_without_it():
    loras = []
    for offload in (False, True):
        backbone = tiny_wan_backbone(0)
        config = TrainingConfig(steps=2, width=16, height=16, frames=5, rank=2, block_offload=offload)
        loras.append(train_motion_lora(backbone, ClipSet((_clip(),)), "motion_director", config).motion_lora)
    assert loras[0].tensors.keys() == loras[1].tensors.keys()
    assert all(torch.equal(loras[0].tensors[k], loras[1].tensors[k]) for k in loras[0].tensors)


def test_config_defaults_off_and_validates_the_memory_options():
    config = TrainingConfig(memory="manual")  # manual: unset options mean these defaults (auto leaves them unset)
    assert (config.base_storage, config.block_offload) == ("native", False)
    assert not config.memory_options.active
    assert TrainingConfig.from_dict(TrainingConfig(base_storage="fp8", block_offload=True).to_dict()).memory_options \
        == memory.MemoryOptions("fp8", True)
    recipe_config = get_recipe("motion_director").config
    with pytest.raises(InvalidInputError, match="base_storage must be one of"):
        TrainingConfig(base_storage="fp4").resolve(recipe_config)
    with pytest.raises(InvalidInputError, match="block_offload needs gradient_checkpointing"):
        TrainingConfig(block_offload=True, gradient_checkpointing=False).resolve(recipe_config)


def test_train_command_passes_base_storage_and_block_offload(tmp_path, capsys):
    from motion_core.__main__ import main
    from motion_core.lora import load_lora

    model = save_tiny_wan_diffusers_folder(tmp_path / "wan", seed=0)
    video = write_animated_image(tmp_path / "clip.gif", sample_frames(5, 16, 16), 8)
    out = tmp_path / "pan.safetensors"
    code = main(["train", "--model", str(model), "--video", str(video), "--caption", "a pan", "--steps", "1",
                 "--rank", "2", "--width", "16", "--height", "16", "--frames", "5", "--base-storage", "fp8",
                 "--block-offload", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert load_lora(out).steps == 1
    assert json.loads(json.dumps(TrainingConfig(base_storage="fp8").to_dict()))["base_storage"] == "fp8"


def test_gpu_bench_trains_the_14b_with_fp8_storage_block_offload_and_checkpointing_built_without_cuda():
    from motion_core.bench import gpu

    (recipe, size, checkpointing, _), = gpu.planned_runs("wan_14b", "", "", False)
    config = gpu.training_config("wan_14b", size, 6, checkpointing)
    assert (recipe, size) == ("motion_director", (832, 480, 81))
    assert (config.base_storage, config.block_offload, config.gradient_checkpointing) == ("fp8", True, True)
    assert config.mixed_precision == "auto"  # bf16 autocast on a CUDA card with bf16
    config.resolve(get_recipe(recipe).config)  # valid as a whole
    plain = gpu.training_config("wan_1.3b", (832, 480, 33), 6, True)
    assert (plain.base_storage, plain.block_offload) == ("native", False)
    assert not gpu.training_config("wan_14b", size, 6, False).block_offload  # offload needs checkpointing
