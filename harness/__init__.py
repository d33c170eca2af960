"""PyraTok Bench: the evaluation engine. It knows no particular data set or model; tasks and models plug in."""
import os

__version__ = "0.1.0"

# Runs make no network calls unless the user asks (`--allow-network`): a failed hub lookup otherwise hangs ~30 s,
# and a weight silently fetched from a hub would make a result irreproducible.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
