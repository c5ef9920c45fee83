"""The pack's ComfyExtension: the one list of every node it registers."""

from comfy_api.latest import ComfyExtension, io

from . import loras, models, sampling, training, video


class MotionCustomizationExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [*video.NODES, *models.NODES, *loras.NODES, *sampling.NODES, *training.NODES]
