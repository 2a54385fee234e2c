"""End-to-end evaluation of a composed model on a document-shaped file (``pipelines/evaluate.py``,
``pipelines/compose.py --data``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spanfirst.data.annotation_tools import read_documents, sniff
from spanfirst.errors import DataError
from spanfirst.extraction.chain import Extractor
from spanfirst.extraction.scoring import score_chain

METRIC = "e2e_relation_strict_f1"  # what a composed model's registration compares


def read_both_layers(path: str | Path, fmt: str = "auto", data: Any = None):
    """The documents of an annotation-tool file (entities and relations), with the RE config's
    offset and mismatch settings when given."""
    fmt = sniff(path) if fmt == "auto" else fmt
    if fmt is None:
        raise DataError(str(path), None, None, "end-to-end evaluation needs a file with entities and relations "
                        "(doccano, Label Studio or brat; see docs/config.md, 'Annotation-tool exports')")
    kwargs = {"offset_unit": data.offset_unit, "on_mismatch": data.on_entity_mismatch,
              "text_field": data.fields.get("text")} if data is not None else {}
    return read_documents(path, fmt, **kwargs)


def evaluate_extractor(extractor: Extractor, path: str | Path, out: str | Path | None = None, fmt: str = "auto",
                       batch_size: int = 64) -> dict[str, Any]:
    """``e2e_*`` metrics (entities strict; relations boundaries and strict; RE on gold entities);
    written to ``out/report.json`` when given."""
    read = read_both_layers(path, fmt, extractor.re.cfg.data)
    flat = {f"e2e_{k}": v for k, v in score_chain(extractor, read, batch_size).items()}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps({"metrics": flat, "data": {"file": str(path), **read.notes}},
                                                    ensure_ascii=False, indent=1), encoding="utf-8")
    return flat
