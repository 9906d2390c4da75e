"""Shared setup of the Python tests: no telemetry from chromadb (the parity tests run it), never
the network (a model is read from OCHRE_TEST_MODEL_DIR or not at all), and no database left open
from one test to the next."""
import gc
import os

import pytest

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def no_open_databases():
    yield
    import ochre

    ochre.clear_system_cache()
    gc.collect()
