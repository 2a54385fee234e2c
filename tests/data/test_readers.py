"""NER readers: every format to character spans, tag schemes, column layouts, errors, auto-detection."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from spanfirst.data.readers import (
    detect_format,
    label_set,
    parse_tag,
    read_conll,
    read_klue_bio,
    read_ner,
    read_span_jsonl,
    read_surface_jsonl,
    tags_to_spans,
    write_span_jsonl,
)
from spanfirst.data.types import Example
from spanfirst.errors import DataError, DataWarning

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

SENTENCE = "가수 김흥국이 왕십리에서 콘서트를 열었다."


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path: Path, name: str, records: list) -> Path:
    return write(tmp_path, name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def surfaces(ex: Example) -> list[tuple[str, str]]:
    return [(ex.text[s.start:s.end], s.type) for s in ex.entities]


def assert_error(err: pytest.ExceptionInfo, path: Path, line: int | None, field: str | None) -> None:
    msg = str(err.value)
    assert str(path) in msg and err.value.path == str(path)
    assert err.value.line == line
    if line is not None:
        assert f"line {line}" in msg
    assert err.value.field == field
    if field is not None:
        assert f"field '{field}'" in msg


# -- KLUE character-level BIO --------------------------------------------------------------------


def klue_block(ident: str, text: str, tags: list[str]) -> str:
    assert len(text) == len(tags)
    return f"## {ident}\t(annotated)\n" + "".join(f"{c}\t{t}\n" for c, t in zip(text, tags)) + "\n"


def test_klue_bio_header_comments_and_space_chars(tmp_path):
    tags = ["O", "O", "O"] + ["B-PS", "I-PS", "I-PS"] + ["O", "O"] + ["B-LC", "I-LC", "I-LC"] + ["O"] * 12
    comments = "## 토큰 구분자 : \\n\n## 칼럼명 : CHAR\tNE_TAG\n"
    text = comments + klue_block("s-1", SENTENCE, tags) + klue_block("s-2", "서울 A", ["B-LC", "I-LC", "O", "B-PS"])
    path = write(tmp_path, "k.tsv", text)
    examples = read_klue_bio(path)
    assert [e.id for e in examples] == ["s-1", "s-2"]
    assert examples[0].text == SENTENCE  # the space characters are kept
    assert surfaces(examples[0]) == [("김흥국", "PS"), ("왕십리", "LC")]
    assert surfaces(examples[1]) == [("서울", "LC"), ("A", "PS")]
    assert detect_format(path) == "klue_bio"
    assert read_ner(path) == examples
    assert label_set(examples) == ["LC", "PS"]


def test_klue_bio_without_headers_is_detected_by_space_char_lines(tmp_path):
    path = write(tmp_path, "k.tsv", "김\tB-PS\n씨\tO\n \tO\n왔\tO\n\n")
    assert detect_format(path) == "klue_bio"
    [ex] = read_ner(path)
    assert ex.text == "김씨 왔" and ex.id == "" and surfaces(ex) == [("김", "PS")]


def test_klue_bio_errors(tmp_path):
    path = write(tmp_path, "k.tsv", "## a\tx\n김\tB-PS\n씨\tX-PS\n")
    with pytest.raises(DataError) as err:
        read_klue_bio(path)
    assert_error(err, path, 3, "tag")
    path = write(tmp_path, "k2.tsv", "## a\tx\n김\tB-PS\n씨 O\n")
    with pytest.raises(DataError) as err:
        read_klue_bio(path)
    assert_error(err, path, 3, "tag")
    assert "CHAR<TAB>TAG" in str(err.value)


# -- surface-form JSONL --------------------------------------------------------------------------


def test_surface_jsonl_korean(tmp_path):
    path = jsonl(tmp_path, "s.jsonl", [
        {"title": SENTENCE, "label": {"person": ["김흥국"], "location": ["왕십리"]}},
        {"text": "서울 시민이 서울 소식을 들었다.", "label": {"location": ["서울"]}, "id": 7},
    ])
    first, second = read_surface_jsonl(path)
    assert surfaces(first) == [("김흥국", "person"), ("왕십리", "location")]
    assert [(s.start, s.end) for s in second.entities] == [(0, 2), (7, 9)]  # both occurrences
    assert second.id == "7"
    assert detect_format(path) == "surface_jsonl"


def test_surface_jsonl_longer_forms_claim_first_and_duplicates_collapse(tmp_path):
    text = "서울대학교는 서울에 있다."
    path = jsonl(tmp_path, "s.jsonl", [
        {"title": text, "label": {"location": ["서울", "서울"], "organization": ["서울대학교"]}},
        {"title": "서울대학교 입학", "label": {"location": ["서울"], "organization": ["서울대학교"]}},
    ])
    first, second = read_surface_jsonl(path)
    assert surfaces(first) == [("서울대학교", "organization"), ("서울", "location")]
    assert len(first.entities) == 2
    # a form that occurs only inside a longer entity is still labelled (nested) rather than dropped
    assert surfaces(second) == [("서울", "location"), ("서울대학교", "organization")]


def test_surface_jsonl_missing_form_names_line_and_field(tmp_path):
    path = jsonl(tmp_path, "s.jsonl", [
        {"title": SENTENCE, "label": {"person": ["김흥국"]}},
        {"title": SENTENCE, "label": {"person": ["조용필"]}},
    ])
    with pytest.raises(DataError) as err:
        read_surface_jsonl(path)
    assert_error(err, path, 2, "label.person")
    assert "조용필" in str(err.value)


@pytest.mark.parametrize("record, field", [
    ({"label": {}}, "title"),
    ({"title": 3, "label": {}}, "title"),
    ({"title": SENTENCE}, "label"),
    ({"title": SENTENCE, "label": {"person": [""]}}, "label.person"),
    ({"title": SENTENCE, "label": {"person": 5}}, "label.person"),
])
def test_surface_jsonl_bad_fields(tmp_path, record, field):
    path = jsonl(tmp_path, "s.jsonl", [record])
    with pytest.raises(DataError) as err:
        read_surface_jsonl(path)
    assert_error(err, path, 1, field)


# -- span JSONL ----------------------------------------------------------------------------------


def test_span_jsonl_round_trip_and_dedup(tmp_path):
    ents = [{"start": 3, "end": 6, "type": "PS"}, {"start": 8, "end": 11, "type": "LC"},
            {"start": 3, "end": 6, "type": "PS"}]
    path = jsonl(tmp_path, "a.jsonl", [{"text": SENTENCE, "entities": ents, "id": "x"},
                                       {"text": "빈 문장", "entities": []}])
    examples = read_span_jsonl(path)
    assert surfaces(examples[0]) == [("김흥국", "PS"), ("왕십리", "LC")]  # the duplicate is gone
    assert examples[1].entities == [] and examples[1].id == ""
    out = tmp_path / "sub" / "b.jsonl"
    assert write_span_jsonl(examples, out) == 2
    assert "김흥국" in out.read_text(encoding="utf-8")  # ensure_ascii=False: Hangul as is
    assert read_span_jsonl(out) == examples
    assert read_ner(out) == examples
    assert read_ner(out, limit=1) == examples[:1]


@pytest.mark.parametrize("line, field", [
    ('{"text": "가나다", "entities": [', None),
    ('["가나다"]', None),
    ('{"entities": []}', "text"),
    ('{"text": "가나다", "entities": {}}', "entities"),
    ('{"text": "가나다", "entities": [{"start": 0, "type": "X"}]}', "entities[0].end"),
    ('{"text": "가나다", "entities": [{"start": "0", "end": 1, "type": "X"}]}', "entities[0].start"),
    ('{"text": "가나다", "entities": [{"start": 0, "end": 4, "type": "X"}]}', "entities[0]"),
    ('{"text": "가나다", "entities": [{"start": 2, "end": 2, "type": "X"}]}', "entities[0]"),
    ('{"text": "가나다", "entities": [{"start": 0, "end": 1, "type": ""}]}', "entities[0].type"),
    ('{"text": "가나다", "entities": [], "id": [1]}', "id"),
])
def test_span_jsonl_errors(tmp_path, line, field):
    path = write(tmp_path, "bad.jsonl", '{"text": "좋다", "entities": []}\n\n' + line + "\n")
    with pytest.raises(DataError) as err:
        read_span_jsonl(path)
    assert_error(err, path, 3, field)


# -- CoNLL columns and tag schemes ---------------------------------------------------------------

TOKENS = ["가수", "김", "흥국", "이", "왕십리", "서울", "콘서트", "열었다"]
SCHEMES = {
    # 김 흥국 = PS, 이 = PS (adjacent, same type), 왕십리 = LC, 서울 = LC (adjacent, same type)
    "iob1": ["O", "I-PS", "I-PS", "B-PS", "I-LC", "B-LC", "O", "O"],
    "iob2": ["O", "B-PS", "I-PS", "B-PS", "B-LC", "B-LC", "O", "O"],
    "bioes": ["O", "B-PS", "E-PS", "S-PS", "S-LC", "S-LC", "O", "O"],
    "bilou": ["O", "B-PS", "L-PS", "U-PS", "U-LC", "U-LC", "O", "O"],
}
EXPECTED = [("김 흥국", "PS"), ("이", "PS"), ("왕십리", "LC"), ("서울", "LC")]


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_conll_schemes_decode_to_the_same_spans(tmp_path, scheme):
    lines = "".join(f"{tok}\t{tag}\n" for tok, tag in zip(TOKENS, SCHEMES[scheme]))
    path = write(tmp_path, "c.conll", f"-DOCSTART- O\n\n{lines}\n{lines}")
    examples = read_conll(path)
    assert len(examples) == 2
    assert examples[0].text == " ".join(TOKENS)
    assert surfaces(examples[0]) == EXPECTED == surfaces(examples[1])
    explicit = {"iob1": "iob1", "iob2": "iob2"}.get(scheme, "bioes")
    assert read_ner(path, conll_scheme=explicit) == examples


def test_tags_to_spans_edge_cases():
    assert tags_to_spans(["I-A", "I-B", "I-B", "O", "I-A"]) == [(0, 1, "A"), (1, 3, "B"), (4, 5, "A")]
    assert tags_to_spans(["B-A", "I-A", "B-A", "S-A", "E-A", "I-A"]) == [
        (0, 2, "A"), (2, 3, "A"), (3, 4, "A"), (4, 5, "A"), (5, 6, "A")]
    assert tags_to_spans(["B-A", "I-A", "E-A", "I-A", "E-A"]) == [(0, 3, "A"), (3, 5, "A")]
    assert tags_to_spans(["B-A", "I-A"]) == [(0, 2, "A")]
    assert tags_to_spans([]) == []
    assert parse_tag("U-LOC") == ("S", "LOC") and parse_tag("L-LOC") == ("E", "LOC")
    for bad in ("B-", "X-PER", "BPER", "b-PER", ""):
        with pytest.raises(ValueError):
            parse_tag(bad)


def test_conll_2003_four_columns_and_column_selection(tmp_path):
    text = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n"
            "call NN I-NP O\n.  . O O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n")
    path = write(tmp_path, "eng.train", text)
    assert detect_format(path) == "conll"
    first, second = read_ner(path)
    assert first.text == "EU rejects German call ." and surfaces(first) == [("EU", "ORG"), ("German", "MISC")]
    assert surfaces(second) == [("Peter Blackburn", "PER")]
    chunks = read_conll(path, token_column=0, tag_column=2)  # the chunk column instead
    assert surfaces(chunks[0]) == [("EU", "NP"), ("rejects", "VP"), ("German call", "NP")]
    assert read_ner(path, conll_tag_column=3) == [first, second]
    assert read_ner(path, "conll", conll_token_column=1, conll_tag_column=-1)[0].text == "NNP VBZ JJ NN ."


@pytest.mark.parametrize("text, line, field, kwargs", [
    ("김 B-PS\n씨 O O\n", 2, "columns", {}),
    ("김 B-PS\n씨 Q-PS\n", 2, "tag (column 1)", {}),
    ("김 B-PS\n씨 B-\n", 2, "tag (column 1)", {}),
    ("김 B-PS\n씨 E-PS\n", 2, "tag (column 1)", {"scheme": "iob2"}),
    ("김 B-PS\n", 1, "tag column", {"tag_column": 5}),
    ("김 B-PS\n", 1, "columns", {"token_column": 1}),
    ("김\n", 1, "columns", {}),
])
def test_conll_errors(tmp_path, text, line, field, kwargs):
    path = write(tmp_path, "c.conll", text)
    with pytest.raises(DataError) as err:
        read_conll(path, **kwargs)
    assert_error(err, path, line, field)


# -- dispatch and shared errors ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["auto", "klue_bio", "surface_jsonl", "span_jsonl", "offsets_jsonl", "token_jsonl", "conll"])
def test_empty_file_is_an_error(tmp_path, fmt):
    path = write(tmp_path, "empty.txt", "\n\n" if fmt != "klue_bio" else "## only a comment\n\n")
    with pytest.raises(DataError) as err:
        read_ner(path, fmt)
    assert err.value.path == str(path) and "no examples" in str(err.value)


def test_unknown_format_scheme_and_missing_file(tmp_path):
    path = write(tmp_path, "a.conll", "김 B-PS\n")
    with pytest.raises(ValueError, match="valid formats: auto, klue_bio, surface_jsonl, span_jsonl, offsets_jsonl, "
                                         "token_jsonl, conll, doccano, label_studio, brat"):
        read_ner(path, "xml")
    with pytest.raises(ValueError, match="valid schemes"):
        read_ner(path, conll_scheme="bilou")
    with pytest.raises(FileNotFoundError):
        read_ner(tmp_path / "missing.tsv")


def test_detection_by_content_with_extension_as_hint(tmp_path):
    record = {"text": SENTENCE, "entities": [{"start": 3, "end": 6, "type": "PS"}]}
    assert detect_format(jsonl(tmp_path, "spans.txt", [record])) == "span_jsonl"
    bad = write(tmp_path, "bad.jsonl", "not json\n")
    with pytest.raises(DataError) as err:
        read_ner(bad)
    assert_error(err, bad, 1, None)
    assert "not valid JSON" in str(err.value)
    other = jsonl(tmp_path, "other.jsonl", [{"sentence": SENTENCE}])
    with pytest.raises(DataError) as err:
        read_ner(other)
    assert_error(err, other, 1, None)


def test_bom_crlf_and_non_utf8(tmp_path):
    path = tmp_path / "crlf.conll"
    path.write_bytes("\ufeff김 B-PS\r\n씨 O\r\n\r\n".encode("utf-8"))
    [ex] = read_ner(path)
    assert ex.text == "김 씨" and surfaces(ex) == [("김", "PS")]
    latin = tmp_path / "latin.conll"
    latin.write_bytes(b"a O\n\xe9 O\n")
    with pytest.raises(DataError) as err:
        read_ner(latin, "conll")
    assert_error(err, latin, 2, None)


# -- the real KLUE-NER dev file ------------------------------------------------------------------


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared data folder (../shared/data) is not beside the repository")
def test_real_klue_ner_dev():
    path = SHARED_DATA / "klue-ner" / "klue-ner-dev.tsv"
    examples = read_ner(path)
    assert len(examples) == 500
    assert len({e.id for e in examples}) == 500 and all(e.id.startswith("klue-ner") for e in examples)
    assert label_set(examples) == ["DT", "LC", "OG", "PS", "QT", "TI"]
    assert sum(len(e.entities) for e in examples) > 1000
    for ex in examples:
        for s in ex.entities:
            assert 0 <= s.start < s.end <= len(ex.text)
            surface = ex.text[s.start:s.end]
            assert surface == surface.strip(), (ex.id, surface)


# -- CoNLL nesting levels as tag columns ---------------------------------------------------------

NESTED = ("-DOCSTART- O O\n\n"
          "IL-2 B-DNA B-protein\ngene I-DNA O\nexpression O O\n\n"
          "the O O\nhuman B-cell_type O\nT I-cell_type B-cell_type\ncells I-cell_type I-cell_type\n")


def test_conll_tag_columns_as_nesting_levels(tmp_path):
    path = write(tmp_path, "nested.conll", NESTED)
    first, second = read_ner(path, conll_tag_column=[1, 2])
    assert surfaces(first) == [("IL-2", "protein"), ("IL-2 gene", "DNA")]
    assert surfaces(second) == [("human T cells", "cell_type"), ("T cells", "cell_type")]
    # the same span in both columns is one entity; the column order does not matter
    dup = write(tmp_path, "dup.conll", "IL-2 B-protein B-protein\ngene O O\n")
    assert [surfaces(e) for e in read_ner(dup, conll_tag_column=[2, 1])] == [[("IL-2", "protein")]]


def test_an_unread_tag_column_with_the_same_types_warns_with_its_counts(tmp_path):
    path = write(tmp_path, "nested.conll", NESTED)
    with pytest.warns(DataWarning, match=r"column 1 holds tags too \(2 entities: DNA 1, cell_type 1\).*"
                                         r"data.conll_tag_column: \[1, 2\]") as record:
        outer_only = read_ner(path)  # the last column only
    assert len(record) == 1 and str(path) in str(record[0].message)
    assert [surfaces(e) for e in outer_only] == [[("IL-2", "protein")], [("T cells", "cell_type")]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both read: nothing to warn about
        read_ner(path, conll_tag_column=[1, 2])


def test_conll_2003_chunk_column_is_not_taken_for_a_nesting_level(tmp_path):
    path = write(tmp_path, "eng.train", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NP/VP chunks share no type with ORG/MISC
        assert surfaces(read_ner(path)[0]) == [("EU", "ORG"), ("German", "MISC")]


# -- type -> mention -> offsets (CLUENER's layout), token records, Parquet/Arrow ------------------

CLUE_TEXT = "浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。叶老桂认为"


def clue_record(inclusive: bool) -> dict:
    e = 0 if inclusive else 1  # how far past the last character the end offset points
    return {"text": CLUE_TEXT, "label": {"name": {"叶老桂": [[9, 11 + e], [32, 34 + e]]},
                                         "company": {"浙商银行": [[0, 3 + e]]}}}


@pytest.mark.parametrize("inclusive", [True, False])
def test_offsets_jsonl_decides_inclusive_or_exclusive_ends_on_the_whole_file(tmp_path, inclusive):
    path = jsonl(tmp_path, "clue.json", [clue_record(inclusive)] * 2)
    assert detect_format(path) == "offsets_jsonl"  # not surface_jsonl: the forms map to offsets
    notes = {}
    first, second = read_ner(path, notes=notes)
    assert notes == {"format": "offsets_jsonl", "offsets": "inclusive" if inclusive else "exclusive"}
    assert surfaces(first) == [("浙商银行", "company"), ("叶老桂", "name"), ("叶老桂", "name")] == surfaces(second)
    # the other convention, forced, names the mention that no longer matches
    with pytest.raises(DataError) as err:
        read_ner(path, offsets="exclusive" if inclusive else "inclusive")
    assert_error(err, path, 1, "label.name.叶老桂")


def test_offsets_jsonl_auto_refuses_a_file_that_fits_neither_convention(tmp_path):
    mixed = [clue_record(True), clue_record(False)]
    path = jsonl(tmp_path, "mixed.jsonl", mixed)
    with pytest.raises(DataError, match=r"inclusive or exclusive.*3 of 6 mentions match the text with exclusive"):
        read_ner(path)


def test_surface_reader_points_at_offsets_layout(tmp_path):
    path = jsonl(tmp_path, "clue.jsonl", [clue_record(True)])
    with pytest.raises(DataError, match="offsets_jsonl") as err:
        read_ner(path, "surface_jsonl")
    assert_error(err, path, 1, "label.name")


def test_token_jsonl_with_nested_token_offsets(tmp_path):
    record = {"tokens": ["the", "human", "T", "cells", "express", "IL-2"],
              "entities": [{"start": 1, "end": 4, "type": "cell_type"}, {"start": 2, "end": 4, "type": "cell_type"},
                           {"start": 5, "end": 6, "type": "protein"}]}
    path = jsonl(tmp_path, "genia.jsonl", [record])
    assert detect_format(path) == "token_jsonl"
    notes = {}
    [ex] = read_ner(path, notes=notes)
    assert ex.text == "the human T cells express IL-2" and notes["offsets"] == "exclusive"
    assert surfaces(ex) == [("human T cells", "cell_type"), ("T cells", "cell_type"), ("IL-2", "protein")]
    inclusive = {**record, "entities": [{"start": 1, "end": 3, "type": "cell_type"},
                                        {"start": 5, "end": 5, "type": "protein"}]}  # start == end: inclusive
    [ex] = read_ner(jsonl(tmp_path, "incl.jsonl", [inclusive]), notes=notes)
    assert surfaces(ex) == [("human T cells", "cell_type"), ("IL-2", "protein")] and notes["offsets"] == "inclusive"
    bad = {**record, "entities": [{"start": 4, "end": 9, "type": "x"}]}
    with pytest.raises(DataError, match="the number of tokens") as err:
        read_ner(jsonl(tmp_path, "bad.jsonl", [record, bad]))
    assert err.value.line == 2 and err.value.field == "entities[0]"


def test_ambiguous_record_asks_for_the_format_with_the_candidates(tmp_path):
    path = jsonl(tmp_path, "both.jsonl", [{"text": "a b", "tokens": ["a", "b"], "entities": []}])
    with pytest.raises(DataError, match=r"several layouts \(token_jsonl, span_jsonl\); set data.format"):
        read_ner(path)
    assert read_ner(path, "span_jsonl")[0].text == "a b"


def test_parquet_export_with_class_label_tags_and_an_arrow_span_file(tmp_path):
    """A Hugging Face datasets export: tokens + integer ner_tags named by ClassLabel metadata."""
    import pyarrow as pa
    import pyarrow.feather
    import pyarrow.parquet

    names = ["O", "B-PER", "I-PER", "B-LOC"]
    meta = {"info": {"features": {"tokens": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"},
                                  "ner_tags": {"feature": {"names": names, "_type": "ClassLabel"}, "_type": "List"}}}}
    table = pa.table({"tokens": [["Ada", "Lovelace", "visited", "Paris"], ["hi"]], "ner_tags": [[1, 2, 0, 3], [0]]})
    table = table.replace_schema_metadata({b"huggingface": json.dumps(meta).encode()})
    path = tmp_path / "train-00000-of-00001.parquet"
    pyarrow.parquet.write_table(table, path)
    assert detect_format(path) == "token_jsonl"
    first, second = read_ner(path)
    assert surfaces(first) == [("Ada Lovelace", "PER"), ("Paris", "LOC")] and second.entities == []
    # without the metadata an integer tag cannot be named: the error names the row and the field
    plain = tmp_path / "plain.parquet"
    pyarrow.parquet.write_table(table.replace_schema_metadata(None), plain)
    with pytest.raises(DataError, match=r"row 1, field 'ner_tags\[0\]'"):
        read_ner(plain)
    spans = pa.table({"text": [SENTENCE], "entities": [[{"start": 3, "end": 6, "type": "PS"}]]})
    arrow = tmp_path / "spans.arrow"
    pyarrow.feather.write_feather(spans, arrow)
    assert surfaces(read_ner(arrow)[0]) == [("김흥국", "PS")]


def test_germeval_layout_index_token_two_levels_and_comment_lines(tmp_path):
    text = ("#\thttp://example.org/a\t[2010-07-04]\t\n1\tDer\tO\tO\n2\tADAC\tB-ORG\tB-ORG\n3\tGT\tI-ORG\tO\n"
            "4\tauf\tO\tO\n5\tEurospeedway\tB-ORG\tO\n6\tLausitz\tI-ORG\tB-LOC\n7\t#\tO\tO\n\n"
            "# sent_id = 2\n1\tIn\tO\tO\n2\tDeutschland\tB-LOC\tO\n")
    path = write(tmp_path, "NER-de-dev.tsv", text)
    first, second = read_ner(path, conll_token_column=1, conll_tag_column=[2, 3])
    assert first.text == "Der ADAC GT auf Eurospeedway Lausitz #"  # a '#' token inside a sentence stays a token
    assert surfaces(first) == [("ADAC", "ORG"), ("ADAC GT", "ORG"), ("Eurospeedway Lausitz", "ORG"), ("Lausitz", "LOC")]
    assert second.text == "In Deutschland" and surfaces(second) == [("Deutschland", "LOC")]
    # a two-column file whose token is a lone '#' keeps it
    tweets = write(tmp_path, "tweets.conll", "# O\nlove O\nParis B-LOC\n")
    [ex] = read_ner(tweets)
    assert ex.text == "# love Paris" and surfaces(ex) == [("Paris", "LOC")]


def test_unread_tag_columns_land_in_the_notes(tmp_path):
    path = write(tmp_path, "nested.conll", NESTED)
    notes = {}
    with pytest.warns(DataWarning):
        read_ner(path, notes=notes)
    assert notes == {"format": "conll", "tag_columns": [2], "unread_tag_columns": {1: 2}}
