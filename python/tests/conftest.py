"""Shared setup of the Python tests: no telemetry from chromadb (the parity tests run it)."""
import os

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
