"""One exception family for everything a user can get wrong.

Every message names the problem and the fix, so the nodes can surface it unchanged in ComfyUI's error dialog.
"""


class MotionCoreError(Exception):
    """Base of all errors the pack raises on purpose."""


class VideoReadError(MotionCoreError):
    """A reference video or frames folder is missing, unreadable, corrupt or empty."""


class InvalidInputError(MotionCoreError):
    """A value (size, frame count, option) is out of range or inconsistent."""


class ModelLoadError(MotionCoreError):
    """A model folder or file is missing, incomplete or of the wrong family."""


class LoraMismatchError(MotionCoreError):
    """A LoRA does not fit the model it is applied to (family, keys or shapes)."""


class LoraFileError(MotionCoreError):
    """A LoRA file cannot be read or written (missing, corrupt, unsafe, disk full, folder not writable), or its
    header contradicts its weights. Lives here (re-exported by lora.files) so the format readers can raise it."""


class TrainingError(MotionCoreError):
    """Training cannot go on (NaN loss, bad configuration); the last good checkpoint is kept."""


class CancelledError(MotionCoreError):
    """The user cancelled a long job; any checkpoint written before stopping is named in the message."""


class UnsafePathError(InvalidInputError):
    """A dropdown value names something outside the folder it lists (``..``, absolute, a link out) or not in it.

    The message is the same whether or not such a file exists anywhere, so a refusal cannot be used as a probe.
    """
