"""Shared setup of the Python tests: no telemetry from chromadb (the parity tests run it), never
the network (a model is read from OCHRE_TEST_MODEL_DIR or not at all), and no database left open
from one test to the next."""
import gc
import os

import pytest

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ["HF_HUB_OFFLINE"] = "1"


# Tests that run all-MiniLM-L6-v2 skip without OCHRE_TEST_MODEL_DIR, unless the test command
# requires them (OCHRE_REQUIRE_MODEL_TESTS=1): then they run and fail.
needs_model = pytest.mark.skipif(
    not os.environ.get("OCHRE_TEST_MODEL_DIR") and os.environ.get("OCHRE_REQUIRE_MODEL_TESTS") != "1",
    reason="needs OCHRE_TEST_MODEL_DIR (all-MiniLM-L6-v2 in sentence-transformers layout)",
)


@pytest.fixture(autouse=True)
def no_open_databases():
    yield
    import ochre

    ochre.clear_system_cache()
    gc.collect()
