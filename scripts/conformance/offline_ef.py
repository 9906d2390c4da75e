"""Pytest plugin for `scripts/conformance.sh --offline-ef`: Chroma's default embedding function
(all-MiniLM-L6-v2 through onnxruntime) downloads its model on first use, which fails on a machine
without internet. This replaces its forward pass with a deterministic offline stand-in (384-d
unit vectors derived from a hash of each text's words), so the tests that only need *some*
embedding for their documents exercise the server instead of failing on the download. Tests
comparing against real model output are not made to pass by it.
"""

import hashlib

import numpy as np

from chromadb.utils.embedding_functions import onnx_mini_lm_l6_v2 as onnx


def _embed(text: str) -> np.ndarray:
    v = np.zeros(384, dtype=np.float32)
    for word in text.lower().split() or [""]:
        h = hashlib.sha256(word.encode()).digest()
        rng = np.random.default_rng(int.from_bytes(h[:8], "little"))
        v += rng.standard_normal(384).astype(np.float32)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def _call(self, input):  # noqa: A002 - the protocol's parameter name
    return [_embed(t) for t in input]


onnx.ONNXMiniLM_L6_V2.__call__ = _call
onnx.ONNXMiniLM_L6_V2._download_model_if_not_exists = lambda self: None
