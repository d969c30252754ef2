"""catsdogs: one module per pipeline stage, the ``catsdogs`` command, and their shared code in ``stages.lib``."""

import os

# TensorFlow's C++ start-up notices are not the stages' output; a level the user set wins.
# Set here, the package's first import, because it only works before TensorFlow loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
