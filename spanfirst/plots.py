"""PNG figures (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path


def save_confusion_png(matrix: list[list[int]], labels: list[str], path: str | Path, title: str,
                       xlabel: str = "predicted", ylabel: str = "gold") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=90 if n > 6 else 0, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    peak = max((max(r) for r in matrix), default=0) or 1
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > peak / 2 else "black")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_confusion_files(matrices: dict[str, tuple[list[list[int]], list[str]]], out: str | Path,
                          title_suffix: str = "") -> list[str]:
    """Each named (matrix, labels) as ``NAME.json`` and ``NAME.png`` in ``out``; the file names."""
    import json

    out = Path(out)
    names = []
    for name, (matrix, labels) in matrices.items():
        (out / f"{name}.json").write_text(json.dumps({"labels": labels, "matrix": matrix}, ensure_ascii=False),
                                         encoding="utf-8")
        save_confusion_png(matrix, labels, out / f"{name}.png", f"{name.replace('_', ' ')}{title_suffix}")
        names += [f"{name}.json", f"{name}.png"]
    return names
