"""FastAPI service serving the per-symbol Mamba forecasters (``python -m api``)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
