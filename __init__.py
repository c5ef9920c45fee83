"""ComfyUI entry point of the motion-customization node pack: registers the V3 nodes and serves web/."""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    # Imported lazily so that importing this file (e.g. by tooling) does not pull in ComfyUI.
    from .nodes.extension import MotionCustomizationExtension

    return MotionCustomizationExtension()
