"""Every shipped search space, in every sub-folder of search_spaces/, loads and validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanfirst.sweep.runner import first_trial
from spanfirst.sweep.space import find_space_files, load_space

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
FILES = find_space_files(SPACES)


def test_the_shipped_spaces_are_there():
    names = {p.name for p in FILES}
    assert {"quickstart.yaml", "quickstart_re.yaml", "ner_span_first.yaml", "re.yaml"} <= names, names


@pytest.mark.parametrize("path", FILES, ids=[p.relative_to(SPACES).as_posix() for p in FILES])
def test_space_file_is_valid(path):
    space = load_space(path)
    assert space.dists, f"{path}: empty space"
    tune_space = space.tune_space()
    assert set(tune_space) == set(space.spec.space)


@pytest.mark.parametrize("path", FILES, ids=[p.relative_to(SPACES).as_posix() for p in FILES])
def test_shipped_space_holds_its_base_configs_values(path):
    """The first trial trains the base config as it is (search.start_from_base): a space that excludes
    the base's value of a key makes that trial draw it, and the library's defaults go untested (the
    span-first space once searched k_max 8-16 around a default of 24)."""
    space = load_space(path)
    first = first_trial(space)
    if first is None:
        pytest.skip(f"{path}: a space with a grid has no base trial")
    point, drawn = first
    assert drawn == [], f"{path}: the base config's values of {drawn} lie outside the space"
    assert set(point) == set(space.spec.space)


@pytest.mark.parametrize("space,base", [("ner_span_first.yaml", "klue_ner_e5_small.yaml"),
                                        ("re.yaml", "klue_re_e5_small.yaml")])
def test_the_real_encoder_spaces_hold_the_cpu_sized_configs_too(space, base):
    """The pretrained-encoder spaces are also what a CPU user sweeps with the e5-small configs (their
    learning rates are the best the Korean benchmarks found): a sweep from those starts there too."""
    configs = SPACES.parent / "spanfirst" / "configs"
    point, drawn = first_trial(load_space(SPACES / space, {"base": str(configs / base)}))
    assert drawn == [], f"{space} with {base}: the base values of {drawn} lie outside the space"
