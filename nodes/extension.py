"""The pack's ComfyExtension: the one list of every node it registers."""

from comfy_api.latest import ComfyExtension, io

from . import loras, models, native, paths, sampling, training, video


class MotionCustomizationExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # Once, at load: the schemas list files from these folders every time the frontend asks for them.
        paths.register_folders()
        return [*video.NODES, *models.NODES, *loras.NODES, *sampling.NODES, *training.NODES, *native.NODES]
