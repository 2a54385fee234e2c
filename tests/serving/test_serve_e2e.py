"""Serving end to end, nothing mocked: ``pipelines/train.py --register`` trains a tiny NER and a
tiny RE model (Ray Train, 2 CPU workers) into a SQLite registry; ``mlflow models serve`` serves
each champion as a real process with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``; the tests
talk HTTP to it: every documented request form, long-text windowing, every 4xx case (the server
keeps serving), and ``pipelines/predict.py`` on the same registered models."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

from spanfirst.serving.server import ModelServer

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "spanfirst" / "configs"
SAMPLE = REPO / "spanfirst" / "resources" / "sample"
NER_MAX_BATCH = 8  # set at registration (train.py --max-batch-size)
RE_MAX_BATCH = 4  # set when serving (MLFLOW_PYFUNC_INFERENCE_CONFIG)
RE_MAX_BYTES = 50_000  # the same
MAX_LENGTH = 64

pytestmark = pytest.mark.slow


def pipeline(name: str):
    return runpy.run_path(str(REPO / "pipelines" / f"{name}.py"))["main"]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Train and register both models, then serve both champions (started together)."""
    root = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    train = pipeline("train")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPANFIRST_CACHE", str(root / "cache"))
        common = ["--set", "train.epochs=1", "--set", f"model.max_length={MAX_LENGTH}", "--tracking-uri", uri]
        assert train([str(CONFIGS / "quickstart_ner.yaml"), *common, "--set", f"train.output_dir={root / 'ner'}",
                      "--set", "data.max_train_examples=200", "--set", "data.max_dev_examples=40",
                      "--set", "ner.score_threshold=0.0",  # an hour-old model still answers with entities
                      "--register", "serve-ner", "--max-batch-size", str(NER_MAX_BATCH)]) == 0
        assert train([str(CONFIGS / "quickstart_re.yaml"), *common, "--set", f"train.output_dir={root / 're'}",
                      "--set", "data.max_train_examples=200", "--set", "data.max_dev_examples=40",
                      "--register", "serve-re"]) == 0
    env = {"MLFLOW_TRACKING_URI": uri}
    ner = ModelServer("models:/serve-ner@champion", root / "ner-server.log", env)
    re_ = ModelServer("models:/serve-re@champion", root / "re-server.log",
                      {**env, "MLFLOW_PYFUNC_INFERENCE_CONFIG": json.dumps({"max_batch_size": RE_MAX_BATCH,
                                                                            "max_request_bytes": RE_MAX_BYTES})})
    try:
        ner.start(), re_.start()
        ner.wait_ready(), re_.wait_ready()
        yield SimpleNamespace(uri=uri, root=root, ner=ner, re=re_, ner_ckpt=root / "ner" / "best",
                              re_ckpt=root / "re" / "best", ner_http=ner.client(), re_http=re_.client())
    finally:
        ner.stop(), re_.stop()


@pytest.fixture(scope="module")
def ner_local(served):
    from spanfirst.ner.predictor import NerPredictor

    return NerPredictor.load(served.ner_ckpt)


@pytest.fixture(scope="module")
def re_local(served):
    from spanfirst.re.predictor import RePredictor

    return RePredictor.load(served.re_ckpt)


def same_entities(got: list[dict], want: list[dict]) -> None:
    assert [(e["start"], e["end"], e["type"], e["text"]) for e in got] == \
        [(e["start"], e["end"], e["type"], e["text"]) for e in want]
    assert [e["score"] for e in got] == pytest.approx([e["score"] for e in want], abs=2e-6)


# -- registration ----------------------------------------------------------------------------


def test_registered_models_are_champions_without_pickle(served):
    import mlflow

    from spanfirst import tracking

    c = tracking.client(served.uri)
    for name, ckpt in (("serve-ner", served.ner_ckpt), ("serve-re", served.re_ckpt)):
        mv = c.get_model_version_by_alias(name, "champion")
        assert str(mv.version) == "1" and mv.tags["spanfirst.metric"] == "dev_score"
        run = c.get_run(mv.run_id)
        assert run.data.params["model.max_length"] == str(MAX_LENGTH) and "dev_score" in run.data.metrics
        local = Path(mlflow.artifacts.download_artifacts(c.get_model_version_download_uri(name, "1"),
                                                         dst_path=str(served.root / f"dl-{name}")))
        assert "model_code_path" in (local / "MLmodel").read_text(encoding="utf-8")
        assert not list(local.rglob("*.pkl")) and not list(local.rglob("*.pickle"))
        assert list(local.rglob("heads.safetensors")) and list(local.rglob("model.safetensors"))
        assert json.loads(next(local.rglob("labels.json")).read_text()) == json.loads((ckpt / "labels.json").read_text())
    assert "Model is missing" not in served.ner.log() + served.re.log()


def test_register_never_demotes_the_champion(served):
    import yaml

    from spanfirst import tracking
    from spanfirst.config import config_from_dict
    from spanfirst.serving.register import register_checkpoint

    cfg = config_from_dict(yaml.safe_load((served.ner_ckpt / "config.yaml").read_text(encoding="utf-8")))
    c = tracking.client(served.uri)
    best = float(c.get_model_version("serve-ner", "1").tags["spanfirst.score"])
    reg = register_checkpoint(served.ner_ckpt, cfg, [], best - 0.01, "serve-ner", served.uri)
    assert (reg.version, reg.champion) == ("2", False) and "does not beat champion version 1" in reg.message
    assert str(c.get_model_version_by_alias("serve-ner", "champion").version) == "1"


def _registration_config(checkpoint: Path):
    import yaml

    from spanfirst.config import config_from_dict

    return config_from_dict(yaml.safe_load((checkpoint / "config.yaml").read_text(encoding="utf-8")))


def answers(client, texts: list[str]) -> list[dict]:
    out = []
    for lo in range(0, len(texts), NER_MAX_BATCH):
        status, body = client.invoke({"inputs": texts[lo : lo + NER_MAX_BATCH]})
        assert status == 200, body
        out += body["predictions"]
    return out


def test_served_onnx_int8_model_answers_like_the_torch_one(served):
    """Registered with --runtime onnx-int8: the int8 encoder ships in the model, registration
    scored dev with both runtimes into the run, and the served answers are the torch server's
    within quantisation's reach (entities that sit near the threshold may flip)."""
    import mlflow

    from spanfirst import tracking
    from spanfirst.serving.register import register_checkpoint

    reg = register_checkpoint(served.ner_ckpt, _registration_config(served.ner_ckpt), [], 0.5, "serve-ner-int8",
                              served.uri, model_config={"runtime": "onnx-int8"})
    metrics = tracking.client(served.uri).get_run(reg.run_id).data.metrics
    assert abs(metrics["parity_dev_f1_onnx-int8"] - metrics["parity_dev_f1_torch"]) <= 0.005
    assert 0 < metrics["parity_encoder_max_abs_diff_onnx-int8"] < 1.0
    with tracking.use_uri(served.uri):
        info = mlflow.models.get_model_info(reg.model_uri)
    assert info.metadata["spanfirst_runtime"] == "onnx-int8"
    texts = [r["text"] for r in read_jsonl(SAMPLE / "klue_ner_dev.jsonl")[:24]]
    with ModelServer("models:/serve-ner-int8@champion", served.root / "int8-server.log",
                     {"MLFLOW_TRACKING_URI": served.uri}) as int8:
        got = answers(int8.client(), texts)
    want = answers(served.ner_http, texts)
    key = lambda e: (e["start"], e["end"], e["type"])  # noqa: E731
    want_set = {(i, key(e)): e["score"] for i, row in enumerate(want) for e in row["entities"]}
    got_set = {(i, key(e)): e["score"] for i, row in enumerate(got) for e in row["entities"]}
    common = want_set.keys() & got_set.keys()
    assert want_set and len(common) >= 0.9 * max(len(want_set), len(got_set))
    assert max(abs(want_set[k] - got_set[k]) for k in common) < 0.05



# -- NER over HTTP ---------------------------------------------------------------------------

TEXTS = ["가수 김흥국이 왕십리에서 콘서트를 열었다.", "삼성전자는 2024년 1월 새 제품을 발표했다."]
NER_FORMS = {
    "inputs": {"inputs": TEXTS},
    "inputs_columns": {"inputs": {"text": TEXTS}},
    "inputs_records": {"inputs": [{"text": t} for t in TEXTS]},
    "dataframe_split": {"dataframe_split": {"columns": ["text"], "data": [[t] for t in TEXTS]}},
    "dataframe_records": {"dataframe_records": [{"text": t} for t in TEXTS]},
}


@pytest.mark.parametrize("form", NER_FORMS)
def test_ner_answers_every_request_form(served, ner_local, form):
    status, body = served.ner_http.invoke(NER_FORMS[form])
    assert status == 200, body
    assert list(body) == ["predictions"] and len(body["predictions"]) == len(TEXTS)
    for text, row, want in zip(TEXTS, body["predictions"], ner_local.predict(TEXTS)):
        assert list(row) == ["entities"]
        for ent in row["entities"]:
            assert set(ent) == {"start", "end", "type", "score", "text"} and text[ent["start"]:ent["end"]] == ent["text"]
            assert 0 <= ent["start"] < ent["end"] <= len(text) and 0.0 <= ent["score"] <= 1.0
        same_entities(row["entities"], want)
    assert any(row["entities"] for row in body["predictions"])


def passage_of(tokenizer, sentences: list[str], n_tokens: int) -> str:
    """A run of whole words from ``sentences`` that is exactly ``n_tokens`` tokens long."""
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    for first in range(len(sentences)):
        words = " ".join(sentences[first : first + 8]).split()
        for k in range(len(words)):
            if count(" ".join(words[k:])) == n_tokens:
                return " ".join(words[k:])
            if count(" ".join(words[k:])) < n_tokens:
                break
    raise AssertionError(f"no passage of exactly {n_tokens} tokens")


def test_long_text_is_windowed_and_its_far_entities_found_at_their_offsets(served, ner_local):
    """A passage filling exactly one window, put at the end of a text several windows long: the
    last window then reads exactly that passage, so the entities the model finds in the passage
    alone must come back at the passage's offset in the long text (beyond the boundary zone)."""
    tok = ner_local.tokenizer
    sentences = [r["text"] for r in read_jsonl(SAMPLE / "klue_ner_dev.jsonl")]
    size = ner_local.window_size
    assert size == MAX_LENGTH - 2
    passage = passage_of(tok, sentences[20:], size)
    filler = " ".join(sentences[:12])
    text = f"{filler} {passage}"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 4 * MAX_LENGTH and ids[-size:] == tok(passage, add_special_tokens=False)["input_ids"]
    shift = len(filler) + 1

    status, body = served.ner_http.invoke({"dataframe_records": [{"text": passage}, {"text": text}]})
    assert status == 200, body
    alone, long = (row["entities"] for row in body["predictions"])
    # the part of the last window it owns, minus the longest span (where a boundary tie may be settled)
    last = ner_local.windows([text])[-1][1]
    offsets = tok(passage, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    safe_from = offsets[last.own_start - last.start + max(ner_local.cfg.ner.candidate_lengths())][0]
    expected = [{**e, "start": e["start"] + shift, "end": e["end"] + shift} for e in alone if e["start"] >= safe_from]
    assert expected, "the model found nothing in the passage's far part"
    same_entities([e for e in long if e["start"] >= safe_from + shift], expected)
    covered = tok(text, truncation=True, max_length=MAX_LENGTH, return_offsets_mapping=True)["offset_mapping"]
    assert min(e["start"] for e in expected) > 3 * max(b for _, b in covered)  # far beyond one window
    assert all(text[e["start"]:e["end"]] == e["text"] for e in long)
    assert min(e["start"] for e in long) < len(filler) // 4  # and the beginning was read too
    same_entities(long, ner_local.predict([text])[0])


BAD_NER = [
    ({"dataframe_records": [{"txt": "서울"}]}, "text"),
    ({"inputs": [{"txt": "서울"}]}, "text"),
    ({"inputs": ["서울에서", ""]}, "field 'text' of row 1 is empty"),
    ({"dataframe_split": {"columns": ["text"], "data": [["   "]]}}, "field 'text' of row 0 is empty"),
    ({"dataframe_records": [{"text": 5}]}, "field 'text' of row 0 must be a string, got int 5"),
    ({"inputs": ["서울", None]}, "field 'text' of row 1 must be a string, got null"),
    ({"inputs": {"text": [["서울"], 3]}}, "field 'text' of row 0 must be a string"),
    ({"inputs": ["서울"] * (NER_MAX_BATCH + 1)}, f"at most {NER_MAX_BATCH} rows per request"),
    ({"texts": ["서울"]}, "dataframe_records"),
    ('{"inputs": ["서울"', "valid JSON"),
    # only a gliner-head model takes entity types per request; span-first's are fixed
    ({"inputs": ["서울"], "params": {"types": ["LC"]}}, "params.types: this model predicts a fixed type set"),
]


@pytest.mark.parametrize(("payload", "names"), BAD_NER, ids=[f"ner-bad-{i}" for i in range(len(BAD_NER))])
def test_bad_ner_requests_get_a_400_naming_the_field(served, payload, names):
    status, body = served.ner_http.invoke(payload)
    assert status == 400, body
    assert isinstance(body, dict) and names in body["message"] and "stack_trace" not in body
    assert "Traceback" not in json.dumps(body)
    assert served.ner.alive()
    status, body = served.ner_http.invoke({"inputs": ["서울"]})
    assert status == 200 and len(body["predictions"]) == 1


# -- RE over HTTP ----------------------------------------------------------------------------

RECORDS = [
    {"text": "이순신은 조선 중기의 무신이다.", "subject_start": 0, "subject_end": 3, "subject_type": "PER",
     "object_start": 5, "object_end": 7, "object_type": "LOC"},
    {"text": "삼양식품은 창업주 전중윤 회장의 뜻을 기렸다.", "subject_start": 0, "subject_end": 4, "subject_type": "ORG",
     "object_start": 10, "object_end": 13, "object_type": "PER"},
]
COLUMNS = list(RECORDS[0])
RE_FORMS = {
    "inputs_records": {"inputs": RECORDS},
    "inputs_columns": {"inputs": {c: [r[c] for r in RECORDS] for c in COLUMNS}},
    "dataframe_split": {"dataframe_split": {"columns": COLUMNS, "data": [[r[c] for c in COLUMNS] for r in RECORDS]}},
    "dataframe_records": {"dataframe_records": RECORDS},
}


@pytest.mark.parametrize("form", RE_FORMS)
def test_re_answers_every_request_form_with_every_label_s_probability(served, re_local, form):
    status, body = served.re_http.invoke(RE_FORMS[form])
    assert status == 200, body
    labels = json.loads((served.re_ckpt / "labels.json").read_text(encoding="utf-8"))["labels"]
    records = [{"text": r["text"], **{side: {k: r[f"{side}_{k}"] for k in ("start", "end", "type")}
                                      for side in ("subject", "object")}} for r in RECORDS]
    for row, want in zip(body["predictions"], re_local.predict(records), strict=True):
        assert list(row) == ["label", "score", "probs"]
        assert list(row["probs"]) == labels  # every label, in the saved order
        assert sum(row["probs"].values()) == pytest.approx(1.0, abs=1e-6)
        assert row["label"] == want["label"] == max(row["probs"], key=row["probs"].get)
        assert row["score"] == pytest.approx(want["score"], abs=1e-6) == row["probs"][row["label"]]
        assert list(row["probs"].values()) == pytest.approx(list(want["probs"].values()), abs=1e-6)


def bad_record(**changes) -> dict:
    return {"dataframe_records": [RECORDS[0], {k: v for k, v in {**RECORDS[1], **changes}.items() if v is not ...}]}


BAD_RE = [
    (bad_record(subject_type=...), "subject_type"),
    ({"inputs": [{k: v for k, v in RECORDS[0].items() if k != "object_end"}]}, "object_end"),
    (bad_record(object_end=99), "field 'object_end' of row 1 (99) lies outside the text"),
    (bad_record(subject_start=-2), "field 'subject_start' of row 1 (-2) lies outside the text"),
    (bad_record(subject_start=4), "field 'subject_start' of row 1 (4) must be less than 'subject_end'"),
    (bad_record(object_start="ten"), "field 'object_start' of row 1 must be an integer character offset"),
    (bad_record(object_start=10.5), "field 'object_start' of row 1 must be an integer character offset"),
    (bad_record(subject_type=7), "field 'subject_type' of row 1 must be a non-empty string"),
    (bad_record(text=""), "field 'text' of row 1 is empty"),
    (bad_record(text=None), "field 'text' of row 1 must be a string, got null"),
    ({"inputs": RECORDS * 3}, f"at most {RE_MAX_BATCH} rows per request"),
]


@pytest.mark.parametrize(("payload", "names"), BAD_RE, ids=[f"re-bad-{i}" for i in range(len(BAD_RE))])
def test_bad_re_requests_get_a_400_naming_the_field(served, payload, names):
    status, body = served.re_http.invoke(payload)
    assert status == 400, body
    assert isinstance(body, dict) and names in body["message"] and "stack_trace" not in body
    assert served.re.alive()
    status, body = served.re_http.invoke({"inputs": RECORDS})
    assert status == 200 and len(body["predictions"]) == 2


def test_oversized_requests_are_refused_before_mlflow_parses_them(served):
    """The request guard answers first: a body over max_request_bytes is a 413, and a request with
    too many rows is refused for its rows even though a column is missing too (MLflow's schema
    check would have answered first); the server keeps answering valid requests."""
    status, body = served.re_http.invoke({"dataframe_records": [{**RECORDS[0], "text": "가" * RE_MAX_BYTES}]})
    assert status == 413 and "max_request_bytes" in body["message"] and f"{RE_MAX_BYTES:,}" in body["message"], body
    no_object_type = [{k: v for k, v in RECORDS[0].items() if k != "object_type"}] * (RE_MAX_BATCH + 1)
    status, body = served.re_http.invoke({"dataframe_records": no_object_type})
    assert status == 400 and f"at most {RE_MAX_BATCH} rows per request" in body["message"], body
    status, body = served.re_http.invoke({"dataframe_records": no_object_type[:1]})
    assert status == 400 and "object_type" in body["message"], body  # within the limits: MLflow's check, as before
    status, body = served.re_http.invoke({"inputs": RECORDS})
    assert status == 200 and len(body["predictions"]) == 2


# -- batch prediction with the same models ---------------------------------------------------


def test_predict_pipeline_runs_the_registered_models(served, tmp_path):
    predict = pipeline("predict")
    long = " ".join(r["text"] for r in read_jsonl(SAMPLE / "klue_ner_dev.jsonl")[:10])
    (tmp_path / "texts.txt").write_text(f"{TEXTS[0]}\n\n{long}\n", encoding="utf-8")
    for source, out in (("models:/serve-ner@champion", "uri.jsonl"), (str(served.ner_ckpt), "ckpt.jsonl")):
        assert predict([source, "--tracking-uri", served.uri, "--input", str(tmp_path / "texts.txt"),
                        "--output", str(tmp_path / out), "--batch-size", "2"]) == 0
    rows = read_jsonl(tmp_path / "uri.jsonl")
    assert [r["text"] for r in rows] == [TEXTS[0], "", long] and rows[1]["entities"] == []
    assert rows == read_jsonl(tmp_path / "ckpt.jsonl")  # registered model == checkpoint folder
    status, body = served.ner_http.invoke({"inputs": [TEXTS[0], long]})
    same_entities(rows[0]["entities"], body["predictions"][0]["entities"])
    same_entities(rows[2]["entities"], body["predictions"][1]["entities"])

    lines = (SAMPLE / "klue_re_dev.jsonl").read_text(encoding="utf-8").splitlines()[:6]  # > RE_MAX_BATCH rows
    (tmp_path / "re.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert predict(["models:/serve-re@champion", "--tracking-uri", served.uri, "--input", str(tmp_path / "re.jsonl"),
                    "--output", str(tmp_path / "sub.csv")]) == 0
    import pandas as pd

    sub = pd.read_csv(tmp_path / "sub.csv")
    assert list(sub.columns) == ["id", "pred_label", "probs"] and len(sub) == 6
    assert [str(i) for i in sub["id"]] == [json.loads(line)["id"] for line in lines]
    assert all(len(json.loads(p)) == 30 for p in sub["probs"])


# -- under load ------------------------------------------------------------------------------


def test_a_short_soak_gets_no_5xx_and_a_4xx_for_every_bad_request(served):
    """The soak benchmark's request mix (benchmarks.soak), scaled down: concurrent clients,
    valid and invalid requests; every invalid one is a 4xx, nothing is a 5xx, memory stays bounded."""
    from benchmarks.soak import cases, soak, verdict
    from spanfirst.serving.settings import DEFAULT_CONFIG

    re_rows = [{"text": r["text"], **{f"{side}_{key}": r[side][key] for side in ("subject", "object")
                                      for key in ("start", "end", "type")}}
               for r in read_jsonl(SAMPLE / "klue_re_dev.jsonl")[:16]]
    texts = [r["text"] for r in read_jsonl(SAMPLE / "klue_ner_dev.jsonl")[:16]]
    for task, server, max_batch in (("ner", served.ner, NER_MAX_BATCH), ("re", served.re, RE_MAX_BATCH)):
        mix = cases(task, texts, re_rows, DEFAULT_CONFIG["max_text_chars"], max_batch)
        result = soak(server, mix, requests=6 * len(mix), clients=3, time_limit_s=120, warmup=2)
        assert verdict(result) == [], (task, verdict(result), server.log()[-3000:])
        assert result["sent"] == 6 * len(mix)


# -- NER + RE composed, over HTTP ------------------------------------------------------------


def as_documents(rows: list[dict], path: Path) -> Path:
    """RE rows of the same sentence grouped into one doccano document (its entities, its relations)."""
    docs: dict[str, dict] = {}
    for r in rows:
        doc = docs.setdefault(r["text"], {"text": r["text"], "entities": [], "relations": []})
        ids = []
        for side in ("subject", "object"):
            e = r[side]
            key = {"label": e["type"], "start_offset": e["start"], "end_offset": e["end"]}
            found = next((x["id"] for x in doc["entities"] if {k: x[k] for k in key} == key), None)
            if found is None:
                found = len(doc["entities"]) + 1
                doc["entities"].append({"id": found, **key})
            ids.append(found)
        if r["label"] != "no_relation":
            doc["relations"].append({"from_id": ids[0], "to_id": ids[1], "type": r["label"]})
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs.values()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def composed_parts(served):
    """An NER and an RE model trained on the same document-shaped file (3 epochs: an RE model of
    one epoch predicts no relation at all)."""
    root = served.root / "composed"
    train_docs = as_documents(read_jsonl(SAMPLE / "klue_re_train.jsonl"), root.parent / "docs-train.jsonl")
    dev_docs = as_documents(read_jsonl(SAMPLE / "klue_re_dev.jsonl"), root.parent / "docs-dev.jsonl")
    train = pipeline("train")
    common = ["--set", f"data.train={train_docs}", "--set", f"data.dev={dev_docs}", "--set", "train.epochs=3",
              "--set", "train.num_workers=1", "--set", f"model.max_length={MAX_LENGTH}"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPANFIRST_CACHE", str(served.root / "cache"))
        assert train([str(CONFIGS / "quickstart_ner.yaml"), *common, "--set", f"train.output_dir={root / 'ner'}"]) == 0
        assert train([str(CONFIGS / "quickstart_re.yaml"), *common, "--set", f"train.output_dir={root / 're'}"]) == 0
    return SimpleNamespace(ner=root / "ner" / "best", re=root / "re" / "best", dev=dev_docs)


def test_composed_model_extracts_entities_and_relations_over_http(served, composed_parts, tmp_path):
    from spanfirst import checkpoint as ckpt
    from spanfirst.extraction.chain import Extractor, pair_rules_of
    from spanfirst.ner.predictor import NerPredictor
    from spanfirst.re.predictor import RePredictor
    from spanfirst.tracking import client

    parts = composed_parts
    assert pipeline("compose")(["--ner", str(parts.ner), "--re", str(parts.re), "--data", str(parts.dev),
                                "--register", "serve-extract", "--output", str(tmp_path / "composed"),
                                "--tracking-uri", served.uri]) == 0
    version = client(served.uri).get_model_version_by_alias("serve-extract", "champion")
    run = client(served.uri).get_run(version.run_id)
    assert 0.0 < run.data.metrics["e2e_relation_gold_entities_f1"] <= 1.0
    assert run.data.metrics["e2e_relation_strict_f1"] <= run.data.metrics["e2e_relation_boundaries_f1"]
    ner, re_ = NerPredictor.load(parts.ner), RePredictor.load(parts.re)
    local = Extractor(ner, re_, pair_rules_of(re_, ckpt.read(parts.re, task="re").labels))
    texts = [r["text"] for r in read_jsonl(parts.dev)[:16]]
    want = local.extract(texts)
    assert any(w["relations"] for w in want)
    server = ModelServer("models:/serve-extract@champion", served.root / "extract-server.log",
                         {"MLFLOW_TRACKING_URI": served.uri})
    try:
        server.start()
        server.wait_ready()
        http = server.client()
        status, body = http.invoke({"inputs": texts})
        assert status == 200, body
        rows = body["predictions"]
        assert [list(r) for r in rows] == [["text", "entities", "relations"]] * len(texts)
        for text, row, expected in zip(texts, rows, want):
            assert row["text"] == text
            for ent in row["entities"]:
                assert text[ent["start"]:ent["end"]] == ent["text"] and set(ent) == {"start", "end", "type", "score", "text"}
            same_entities(row["entities"], expected["entities"])
            for rel in row["relations"]:
                assert set(rel) == {"subject", "object", "label", "score"} and rel["subject"] != rel["object"]
                assert 0 <= rel["subject"] < len(row["entities"]) and 0 <= rel["object"] < len(row["entities"])
                assert rel["label"] in re_.labels and rel["label"] != re_.negative and 0.0 <= rel["score"] <= 1.0
            assert [(r["subject"], r["object"], r["label"]) for r in row["relations"]] == \
                [(r["subject"], r["object"], r["label"]) for r in expected["relations"]]
        status, body = http.invoke({"inputs": texts, "params": {"relations": False}})
        assert status == 200 and all(r["relations"] == [] for r in body["predictions"])
        status, body = http.invoke({"inputs": texts, "params": {"min_relation_score": 1.0}})
        assert status == 200 and all(r["relations"] == [] for r in body["predictions"])
        status, body = http.invoke({"inputs": ["서울", None]})
        assert status == 400 and "field 'text' of row 1 must be a string" in body["message"]
        assert server.alive()
    finally:
        server.stop()
    # the saved folder answers the same through predict.py, and evaluate.py scores it end to end
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert pipeline("predict")([str(tmp_path / "composed"), "--input", str(tmp_path / "texts.txt"),
                                "--output", str(tmp_path / "out.jsonl")]) == 0
    got = read_jsonl(tmp_path / "out.jsonl")
    assert [(r["text"], [(x["subject"], x["object"], x["label"]) for x in r["relations"]]) for r in got] == \
        [(w["text"], [(x["subject"], x["object"], x["label"]) for x in w["relations"]]) for w in want]
    assert pipeline("evaluate")([str(tmp_path / "composed"), "--data", str(parts.dev),
                                 "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text(encoding="utf-8"))["metrics"]
    assert report["e2e_relation_strict_f1"] == pytest.approx(run.data.metrics["e2e_relation_strict_f1"])


def test_compose_keeps_the_best_pair_of_two_sweeps_top_checkpoints(served, composed_parts, tmp_path, capsys):
    import csv

    parts = composed_parts

    def sweep_folder(name: str, trials: list[tuple[str, float, Path]]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        with (folder / "trials.csv").open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["trial_id", "status", "score", "checkpoint"])
            w.writerows([[t, "completed", s, str(p)] for t, s, p in trials])
        return folder

    # ranked by their own dev scores, the KLUE-NER sample's model comes first, but its entity types
    # (PS, OG, ...) are not the documents' (PER, ORG, ...): the pair with the parts trained on the
    # documents wins end to end
    ner_sweep = sweep_folder("ner-sweep", [("klue", 0.9, served.ner_ckpt), ("docs", 0.2, parts.ner),
                                           ("gone", 0.95, tmp_path / "missing")])
    re_sweep = sweep_folder("re-sweep", [("docs", 0.4, parts.re), ("klue", 0.3, served.re_ckpt)])
    out = tmp_path / "best-pair"
    assert pipeline("compose")(["--ner-sweep", str(ner_sweep), "--re-sweep", str(re_sweep), "--top-k", "2",
                                "--data", str(parts.dev), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"best pair: {parts.ner} + {parts.re}" in printed
    assert sum(line.strip().startswith(("klue", "docs")) for line in printed.splitlines()) == 4  # 2 x 2 pairs
    assert (out / "MLmodel").is_file()
