"""The errors that mean "bad input" (shown to users as one line, exit code 2) rather than a bug."""

from atvg_tf.frontend.audio import AudioError
from atvg_tf.frontend.face.assets import ModelFileError
from atvg_tf.frontend.face.landmarks import NoFaceError
from atvg_tf.frontend.video import VideoError
from atvg_tf.frontend.image import ImageError

# PrepareError and the pipeline's errors derive from ValueError; FileNotFoundError and FileExistsError cover bad paths.
USER_ERRORS = (
    AudioError, ImageError, ModelFileError, NoFaceError, VideoError, ValueError, FileNotFoundError, FileExistsError, PermissionError
)
