"""FastAPI service serving the per-symbol Mamba forecasters (``uvicorn api.main:app``)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
