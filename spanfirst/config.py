"""One typed config per task.

Every part of a run (readers, model, training loop, evaluation, sweeps) reads a single
:data:`RunConfig`: an :class:`NerRunConfig` or an :class:`ReRunConfig`, told apart by ``task``
(a config without ``task`` is NER). Each carries only its own task's sections, so a key of the
other task (``ner.*`` or ``model.head`` in an RE config, ``re.*`` in an NER one) is an
error naming the key, in run configs, ``--set`` overrides and search spaces alike. A config is
loaded from YAML, strict about unknown keys (a typo such as ``warmup_ratoi`` is an error naming
the key, not a silently ignored setting) and lax about number spelling (YAML reads ``1e-5`` as a
string; pydantic coerces it to a float).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError,
                      field_validator, model_validator)


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file and key."""


class Strict(BaseModel):
    """Base of every config-file schema here and in :mod:`spanfirst.sweep.space`: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


DataFormat = Literal["auto", "klue_bio", "surface_jsonl", "span_jsonl", "offsets_jsonl", "token_jsonl", "conll",
                     "klue_re_csv", "re_jsonl", "re_parquet", "doccano", "label_studio", "brat"]


class DataConfig(Strict):
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    format: DataFormat = "auto"
    # CoNLL-style columns: which whitespace-separated column holds the token and which the tag;
    # a list of tag columns reads each as one nesting level (spans merged, duplicates removed).
    conll_token_column: int = 0
    conll_tag_column: int | list[int] = -1
    conll_scheme: Literal["auto", "iob1", "iob2", "bioes"] = "auto"
    # End offsets of offsets_jsonl / token_jsonl mentions and of RE entities: "auto" decides on the
    # whole file (the convention under which the mentions / entity words match the text; tokens:
    # inclusive only if some entity has start == end) and reports the choice.
    offsets: Literal["auto", "exclusive", "inclusive"] = "auto"
    # Fixed label order; derived (sorted) from the training data when empty.
    labels: list[str] = Field(default_factory=list)
    max_train_examples: int | None = None
    max_dev_examples: int | None = None
    # NER training texts longer than model.max_length: learnt from as overlapping windows (the
    # predictor's windows) or truncated. Dev texts are always scored whole, read as the predictor reads them.
    long_train_texts: Literal["window", "truncate"] = "window"
    # Relation extraction: which column plays which role (text, subject, object, label, id) and
    # which key of an entity dict (word, type, start, end), where the names differ from the ones
    # found by default (spanfirst.re.reader.COLUMN_NAMES / KEY_NAMES); e.g. {label: relation}.
    columns: dict[str, str] = Field(default_factory=dict)
    entity_keys: dict[str, str] = Field(default_factory=dict)
    # NER JSON-lines / Parquet records: which key plays which role (text, tokens, entities, tags, id,
    # and an entity's start, end, type) where the names differ from the ones found by default
    # (spanfirst.data.readers.FIELD_NAMES); e.g. {entities: mentions, type: category}. Label Studio: text.
    fields: dict[str, str] = Field(default_factory=dict)
    # Offsets of annotation-tool exports (doccano, Label Studio, brat): Python code points or the
    # UTF-16 units browser tools count; "auto" decides per file by which makes the entity texts match.
    offset_unit: Literal["auto", "code_points", "utf16"] = "auto"
    # RE from document-shaped data (doccano, Label Studio, brat): every ordered pair of entities of a
    # text is a row, annotated relations labelled, the rest negative_label. pair_window: only pairs
    # at most that many sentences (1: the same sentence) or characters apart; pair_types: observed
    # keeps negatives only for (subject type, object type) combinations of the training relations;
    # max_negatives_per_text: a sample (seeded by negative_seed) of each training text's negatives.
    pair_window: int | None = Field(None, ge=1)
    pair_window_unit: Literal["sentences", "characters"] = "sentences"
    pair_types: Literal["all", "observed"] = "all"
    max_negatives_per_text: int | None = Field(None, ge=0)
    negative_seed: int = 0
    # Relation labels without a direction (e.g. "sibling_of"): learnt in both directions, scored once.
    symmetric_labels: list[str] = Field(default_factory=list)
    # Relation extraction: label list file, negative class, rows whose entity word mismatches the text.
    relation_list: str | None = None
    negative_label: str = "no_relation"
    on_entity_mismatch: Literal["fail", "skip"] = "fail"

    @field_validator("columns", "entity_keys", "fields")
    @classmethod
    def _roles(cls, v: dict[str, str], info: Any) -> dict[str, str]:
        roles = {"columns": ("text", "subject", "object", "label", "id"),
                 "entity_keys": ("word", "type", "start", "end"),
                 "fields": ("text", "tokens", "entities", "tags", "id", "start", "end", "type")}[info.field_name]
        unknown = sorted(set(v) - set(roles))
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; data.{info.field_name} maps {', '.join(roles)} to names")
        return v


class LoraConfig(Strict):
    enabled: bool = False
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["query", "key", "value"])


class TinyBackboneConfig(Strict):
    """Shape of the offline backbone built when ``model.backbone`` is ``tiny``."""

    vocab_size: int = Field(3000, ge=100)
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(256, ge=8)
    seed: int = 0


class ModelConfig(Strict):
    # A hub name (xlm-roberta-base), a local directory, or "tiny": a 2-layer XLM-R built offline
    # from the training texts and loaded through the same from_pretrained path.
    backbone: str = "xlm-roberta-base"
    max_length: int = Field(128, ge=8)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    # The pretrained rows of the input word embeddings stay as loaded; rows of tokens the task adds
    # (entity markers, GLiNER's prompt tokens) still train. A 250k-piece vocabulary (XLM-R, e5) is
    # most of such an encoder's parameters, and AdamW updates every row each step when they train.
    freeze_word_embeddings: bool = False
    lora: LoraConfig = Field(default_factory=LoraConfig)
    tiny: TinyBackboneConfig = Field(default_factory=TinyBackboneConfig)


class NerModelConfig(ModelConfig):
    # The NER head on the encoder (``ner.*`` configures each), a name in the head registry:
    # span_first (the design), bio (token tagger), global_pointer / efficient_global_pointer
    # (rotary span scorer), gliner (types as text prompts). RE has its own classifier: no head key.
    head: str = Field("span_first", description="the NER head")

    @field_validator("head")
    @classmethod
    def _registered(cls, v: str) -> str:
        from spanfirst.ner.heads.registry import known_heads  # no torch: safe at validation time

        heads = known_heads()
        if v not in heads:
            raise ValueError(f"unknown NER head '{v}' (known: {', '.join(heads)})")
        return v


class TopKConfig(Strict):
    """Dynamic number of start candidates: k = min(k_max, max(k_min, ceil(alpha*T) + beta))."""

    # The design's k = min(12, max(4, ceil(0.12 T) + 2)) left a tenth to a fifth of the gold starts
    # out of the candidates (docs/benchmarks.md); the defaults take about twice as many.
    k_min: int = Field(6, ge=1)
    k_max: int = Field(24, ge=1)
    alpha: float = Field(0.25, ge=0.0)
    beta: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _order(self) -> "TopKConfig":
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) must not exceed k_max ({self.k_max})")
        return self


# A decision threshold on a score in [0, 1], or "auto": chosen on dev after every evaluation (the
# threshold maximising dev strict F1, saved in the checkpoint's config)
Threshold = Annotated[float, Field(ge=0.0, le=1.0)] | Literal["auto"]


class GlobalPointerConfig(Strict):
    """GlobalPointer and Efficient GlobalPointer heads (``model.head``)."""

    max_span_width: int = Field(12, ge=1)  # longest span (tokens) scored and predicted
    head_size: int = Field(64, ge=2)  # per-type (efficient: shared) query/key size; even for rotary
    # Keep (span, type) pairs whose sigmoid score reaches this (0.5: a positive logit, the paper's
    # rule); "auto": chosen on dev after each evaluation, as span-first's score_threshold
    threshold: Threshold = "auto"

    @field_validator("head_size")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"head_size must be even (rotary embeddings rotate pairs), got {v}")
        return v


class GlinerConfig(Strict):
    """GLiNER-style head: entity types given as ``[ENT] type ... [SEP]`` prompts before the text."""

    max_span_width: int = Field(12, ge=1)  # longest span (tokens) scored and predicted
    # keep (span, type) pairs whose sigmoid score reaches this; "auto": chosen on dev (as above)
    threshold: Threshold = "auto"
    decoding: Literal["flat", "nested"] = "flat"  # greedy best-first; nested keeps spans inside spans
    # Negative type sampling per training batch: the batch's gold types plus randint(0, ratio) times
    # as many absent types, in shuffled order (0: gold types only).
    max_neg_type_ratio: int = Field(1, ge=0)
    drop_types: bool = False  # also keep only a random-length prefix of the shuffled types
    # A type's vector: its [ENT] token's hidden state (GLiNER), or the mean over [ENT] and the
    # type name's tokens. A randomly initialised encoder (the tiny backbone) never learns which name
    # follows an [ENT] when the prompt order is shuffled: use "mean" there.
    type_pooling: Literal["ent", "mean"] = "ent"


class NerConfig(Strict):
    # Length bins as inclusive [low, high] token lengths; spans longer than the last bin fall in it.
    # "auto": fitted to the training entities' token lengths (see ``length_coverage``) before
    # training; the fitted bins are saved in the checkpoint's config.
    length_bins: list[tuple[int, int]] | Literal["auto"] = "auto"
    # The length each bin expands a start candidate into with ``expand: representative`` (one per
    # bin); "auto": each bin's most frequent training length.
    representative_lengths: list[int] | Literal["auto"] = "auto"
    # Fitted bins reach the shortest length covering this share of the training entities (the
    # structural ceiling of the candidates on the training data).
    length_coverage: float = Field(0.995, gt=0.0, le=1.0)
    # "all": each start expands into every length up to the last bin's (the candidates can reach
    # every entity that long); "representative": into one span per bin (the design's original).
    expand: Literal["representative", "all"] = "all"
    # What the type head reads of a span: "mean" of its tokens (the design), or "endpoints": its
    # first and last token states beside the mean, which tells a span from its neighbours one
    # token longer or shorter.
    # "pointer": endpoints plus a per-type rotary query.key score of the first and last token.
    span_representation: Literal["mean", "endpoints", "pointer"] = "pointer"
    # How a candidate gets its type: "multilabel": one sigmoid per type trained with GlobalPointer's
    # multi-label loss over the sentence's candidates, scored by that sigmoid alone (measured better
    # on WNUT-17 with MiniLM and on KLUE-NER, docs/benchmarks.md); or "softmax" over the types and
    # "no entity" (the design; type class weights and label smoothing apply only to it).
    type_decision: Literal["softmax", "multilabel"] = "multilabel"
    top_k: TopKConfig = Field(default_factory=TopKConfig)
    nms_iou: float = Field(0.5, gt=0.0, le=1.0)
    max_outputs: int = Field(10, ge=1)
    nesting: Literal["allow", "partial", "forbid"] = "forbid"
    # Keep spans scoring at least this; "auto": chosen on dev after each evaluation (the threshold
    # that maximises dev strict F1, logged and saved in the checkpoint's config).
    score_threshold: Threshold = "auto"
    # Losses
    start_focal_gamma: float = Field(2.0, ge=0.0)
    start_focal_alpha: float = Field(0.5, ge=0.0, le=1.0)
    soft_start_labels: bool = False
    soft_start_neighbour: float = Field(0.3, ge=0.0, le=1.0)
    # None: w = 1/log(1.1 + freq) from the training data; a list overrides (one weight per bin).
    length_class_weights: list[float] | None = None
    type_label_smoothing: float = Field(0.05, ge=0.0, lt=1.0)
    type_class_weights: Literal["auto", "none"] = "auto"
    # Non-entity candidates per sentence the type head learns "no entity" from (the highest start
    # logits first); 64 is about all of them, which is what it faces at prediction.
    hard_negatives: int = Field(64, ge=0)
    partial_credit: bool = False
    loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # start, length, type
    # Characters an entity's first or last token may carry outside it, learnt per edge (0 up to
    # this many): a subword tokenizer glues Korean particles ("김흥국이": the piece "국이"), closing
    # brackets ("54)") and the like onto entity edges, where a span of whole tokens cannot end.
    # 0: entities start and end on token boundaries (the design).
    max_edge_trim: int = Field(3, ge=0, le=8)
    # The other heads (model.head); span-first reads the settings above.
    global_pointer: GlobalPointerConfig = Field(default_factory=GlobalPointerConfig)
    gliner: GlinerConfig = Field(default_factory=GlinerConfig)

    @property
    def fitted(self) -> bool:
        """Whether the length bins and representative lengths are concrete (not "auto")."""
        return self.length_bins != "auto" and self.representative_lengths != "auto"

    def candidate_lengths(self) -> list[int]:
        """The span lengths each start candidate expands into."""
        if not self.fitted:
            raise ValueError("ner.length_bins / ner.representative_lengths are 'auto': fitted to the training "
                             "data when the task is built (spanfirst.ner.candidates.fit_length_bins)")
        if self.expand == "all":
            return list(range(1, self.length_bins[-1][1] + 1))
        return list(self.representative_lengths)

    @model_validator(mode="after")
    def _bins(self) -> "NerConfig":
        bins, reps = self.length_bins, self.representative_lengths
        if bins == "auto" and self.length_class_weights is not None:
            raise ValueError("length_class_weights needs explicit length_bins (with 'auto' the number of bins "
                             "is known only once they are fitted to the training data)")
        if bins != "auto":
            prev = 0
            for low, high in bins:
                if low != prev + 1 or high < low:
                    raise ValueError(f"length_bins must be contiguous inclusive ranges from 1, got {bins}")
                prev = high
            if self.length_class_weights is not None and len(self.length_class_weights) != len(bins):
                raise ValueError("length_class_weights needs one weight per length bin")
        if reps != "auto":
            if bins == "auto":
                raise ValueError("representative_lengths needs explicit length_bins (or both 'auto')")
            if len(reps) != len(bins):
                raise ValueError("representative_lengths needs one length per length bin")
            for (low, high), rep in zip(bins, reps):
                if not low <= rep <= high:
                    raise ValueError(f"representative length {rep} lies outside its bin [{low}, {high}]")
        return self


class ReConfig(Strict):
    """Relation extraction: entity markers, entity representation and the classifier loss."""

    # none | entity ([E1] ... [/E1]) | typed_entity ([E1-ORG] ... [/E1-ORG], added special tokens)
    # | typed_punct (@ * ORG * subject @ ... # ^ PER ^ object #, no new tokens)
    marker_style: Literal["none", "entity", "typed_entity", "typed_punct"] = "typed_punct"
    # cls | marker (entity-start marker states) | mean (span mean) | attention (learned span attention)
    pooling: Literal["cls", "marker", "mean", "attention"] = "marker"
    use_cls: bool = False  # also concatenate the [CLS] state to the subject/object vectors
    focal_gamma: float = Field(0.0, ge=0.0)  # 0 is plain cross-entropy
    focal_alpha: float | list[float] | None = None  # a scalar, or one weight per relation label
    label_smoothing: float | Literal["auto"] = 0.0  # "auto": entropy-based epsilon from the train labels
    smoothing_min: float = Field(0.05, ge=0.0, lt=1.0)
    smoothing_max: float = Field(0.2, ge=0.0, lt=1.0)
    class_weights: Literal["none", "auto"] = "none"  # auto: inverse-log-frequency of the train labels
    # Add log p(relation | subject type, object type), counted on the training data, to the logits
    # (times a learnt weight, 1 at the start): the classifier learns what the sentence adds to the
    # type pair, and starts where the type-pair baseline is.
    type_prior: bool = False
    # the prior's pseudo-counts: each pair's counts plus this many examples spread as the labels
    # are over all of training (a pair seen a few times leans on the overall distribution)
    type_prior_strength: float = Field(30.0, gt=0.0)

    @model_validator(mode="after")
    def _ranges(self) -> "ReConfig":
        if isinstance(self.label_smoothing, float) and not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1) or 'auto', got {self.label_smoothing}")
        if self.smoothing_min > self.smoothing_max:
            raise ValueError(f"smoothing_min ({self.smoothing_min}) must not exceed smoothing_max ({self.smoothing_max})")
        return self


class TrainConfig(Strict):
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    lr_backbone: float = Field(2e-5, gt=0.0)
    lr_heads: float = Field(1e-4, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    scheduler: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"
    ] = "linear"
    grad_clip: float = Field(1.0, ge=0.0)
    early_stopping_patience: int = Field(2, ge=0)  # 0 disables early stopping
    # Two-stage recipe: this many epochs train the heads on a frozen backbone, then the backbone
    # (or its LoRA adapters) joins.
    freeze_backbone_epochs: int = Field(0, ge=0)
    seed: int = 42
    # torch threads and reserved CPUs per worker; "auto": the CPUs of the largest Ray node divided
    # among the run's workers (resolved when the run starts; a sweep sets trial.cpus_per_worker)
    threads_per_worker: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # Batches of similar lengths (each run of 50 batches' worth of the shuffled data sorted by
    # length, the batches then shuffled): less padding, the same examples per epoch
    group_by_length: bool = True
    # restarts after a lost worker process or node, each from the latest checkpoint; > 0 makes
    # every epoch write one (the model only when improved, the training state always)
    max_failures: int = Field(0, ge=0)
    # every epoch's checkpoint holds the training state, so the run can continue from it (implied
    # by max_failures > 0; set by sweeps whose scheduler pauses trials at a rung)
    save_training_state: bool = False
    output_dir: str = "runs/default"
    progress: bool = True  # rank 0 prints epoch lines and step progress

    @property
    def resumable(self) -> bool:
        """Every epoch writes the training state, and a restarted run continues from the latest."""
        return self.max_failures > 0 or self.save_training_state


Runtime = Literal["torch", "onnx", "onnx-int8"]


class ServingConfig(Strict):
    """How registration packs the model for serving (:mod:`spanfirst.serving.onnx_runtime`)."""

    #: torch: PyTorch eager; onnx / onnx-int8: the encoder run by ONNX Runtime (int8: its linear
    #: layers dynamically quantised), the heads and decoding unchanged
    runtime: Runtime = "torch"
    #: the most an ONNX runtime may move the dev score (F1, 0-1) from torch's before registration
    #: refuses it (0.005: half a point)
    max_f1_change: float = Field(0.005, ge=0.0)


class RunConfigBase(Strict):
    """What every task's run config has; a task adds its own model fields and section."""

    task: str
    name: str = "run"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or "/" in v:
            raise ValueError("name must be a non-empty string without '/'")
        return v

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data: only this task's sections (what config.yaml holds)."""
        return self.model_dump(mode="json")


class NerRunConfig(RunConfigBase):
    task: Literal["ner"] = "ner"
    model: NerModelConfig = Field(default_factory=NerModelConfig)
    ner: NerConfig = Field(default_factory=NerConfig, description="the NER settings")


class ReRunConfig(RunConfigBase):
    task: Literal["re"] = "re"
    re: ReConfig = Field(default_factory=ReConfig, description="the RE settings")


# The type annotations name; a value is always one of the two classes.
RunConfig = NerRunConfig | ReRunConfig

CONFIG_CLASSES: dict[str, type[NerRunConfig] | type[ReRunConfig]] = {"ner": NerRunConfig, "re": ReRunConfig}
DEFAULT_TASK = "ner"  # a config without ``task`` (today's files) is NER


def _task_tag(value: Any) -> str | None:
    task = value.get("task", DEFAULT_TASK) if isinstance(value, dict) else getattr(value, "task", None)
    return task if isinstance(task, str) else None if task is None else repr(task)


_RUN_CONFIG: TypeAdapter[RunConfig] = TypeAdapter(Annotated[
    Union[Annotated[NerRunConfig, Tag("ner")], Annotated[ReRunConfig, Tag("re")]],
    Discriminator(_task_tag),
])


def config_class(task: str) -> type[NerRunConfig] | type[ReRunConfig]:
    if task not in CONFIG_CLASSES:
        raise ConfigError(f"unknown task '{task}' (known: {', '.join(CONFIG_CLASSES)})")
    return CONFIG_CLASSES[task]


def default_config(task: str = DEFAULT_TASK) -> RunConfig:
    """The all-defaults config of a task."""
    return config_class(task)()


# --------------------------------------------------------------------------------------------
# Loading


# Fields holding input paths: relative values are resolved against the config file's folder,
# so a packaged config finds its packaged sample from any working directory.
_INPUT_PATHS = ("data.train", "data.dev", "data.test", "data.relation_list")


def read_yaml_mapping(path: str | Path, kind: str = "config file") -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty: ``{}``); errors name the file as a ``kind``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {kind} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return raw


def describe_errors(err: ValidationError, source: str, strip_tag: bool = False) -> str:
    """One line per error: ``<source>: unknown key 'a.b'`` or ``<source>: key 'a.b': <why>``.

    ``strip_tag``: the errors come from the task union, whose locations start with the task tag
    (``('re', 'ner')``); the key is what follows, and an unknown key of the other task says so.
    """
    lines = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        task = loc.pop(0) if strip_tag and loc and loc[0] in CONFIG_CLASSES else None
        key = ".".join(loc) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}'{other_task_hint(task, key) if task else ''}")
        elif e["type"] == "union_tag_not_found":
            lines.append(f"{source}: not a run config (a mapping of sections)")
        elif e["type"] == "union_tag_invalid":
            lines.append(f"{source}: key 'task': unknown task {e['ctx']['tag']!r} (known: {', '.join(CONFIG_CLASSES)})")
        else:
            lines.append(f"{source}: key '{key}': {e['msg']}")
    return "\n".join(lines)


def other_task_hint(task: str, dotted: str) -> str:
    """`` (a section of task 'ner'; this config's task is 're')`` when another task knows the path, else ''."""
    for other, cls in CONFIG_CLASSES.items():
        field = _field_at(cls, dotted) if other != task else None
        if field is not None:
            what = f"{field.description}, " if field.description else ""
            kind = "section" if "." not in dotted and _section_model(field) else "key"
            return f" ({what}a {kind} of task '{other}'; this config's task is '{task}')"
    return ""


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def get_dotted(tree: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path of a nested dict; None where the path is missing."""
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def parse_override(text: str) -> tuple[str, Any]:
    """``train.lr_heads=3e-4`` -> ("train.lr_heads", 3e-4); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.path=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> RunConfig:
    """Validate plain data into the config class its ``task`` names (NER when absent)."""
    try:
        return _RUN_CONFIG.validate_python(raw)
    except ValidationError as err:
        raise ConfigError(describe_errors(err, source, strip_tag=True)) from None


def apply_overrides(cfg: RunConfig, overrides: dict[str, Any], source: str = "override") -> RunConfig:
    """A new config with dotted-path values replaced; paths the task's config lacks are rejected by name.

    An override of ``task`` switches the config class: the old task's keys the new one lacks are
    dropped when they hold their defaults, and otherwise kept so that validation names them (a
    tuned ``ner`` section is not silently lost on the way to an RE config).
    """
    tree = cfg.to_dict()
    task = overrides.get("task", cfg.task)
    if not isinstance(task, str) or task not in CONFIG_CLASSES:
        task = cfg.task  # the paths are checked against the current class; validation names the bad task
    cls = CONFIG_CLASSES[task]
    if cls is not type(cfg):
        _drop_defaults_unknown_to(tree, type(cfg)().to_dict(), cls().to_dict())
    for key, value in overrides.items():
        if get_dotted(tree, key) is None and not path_known(cls, key):
            raise ConfigError(f"{source}: unknown key '{key}'{other_task_hint(task, key)}")
        _set_dotted(tree, key, copy.deepcopy(value))
    return config_from_dict(tree, source)


def _drop_defaults_unknown_to(tree: dict[str, Any], old_defaults: dict[str, Any], new_defaults: dict[str, Any]) -> None:
    """Remove (in place) keys of ``tree`` the new class lacks whose values are the old class's defaults."""
    for key in list(tree):
        if key not in new_defaults:
            if key in old_defaults and tree[key] == old_defaults[key]:
                del tree[key]
        elif isinstance(tree[key], dict) and isinstance(new_defaults[key], dict):
            _drop_defaults_unknown_to(tree[key], old_defaults.get(key) or {}, new_defaults[key])


def _section_model(field: Any) -> type[BaseModel] | None:
    annotation = getattr(field, "annotation", None)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _field_at(cls: type[BaseModel], dotted: str) -> Any:
    """The pydantic field a dotted path names in ``cls``, or None."""
    model: type[BaseModel] | None = cls
    field = None
    for part in dotted.split("."):
        if model is None or part not in model.model_fields:
            return None
        field = model.model_fields[part]
        model = _section_model(field)
    return field


def path_known(cls: type[BaseModel], dotted: str) -> bool:
    """Whether a dotted path names a field of the config class ``cls`` (fields whose value may be None too)."""
    return _field_at(cls, dotted) is not None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a run config from YAML, resolve input paths, apply ``key=value`` overrides."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    base = path.resolve().parent
    for dotted in _INPUT_PATHS:
        value = get_dotted(raw, dotted)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            _set_dotted(raw, dotted, str((base / value).resolve()))
    backbone = get_dotted(raw, "model.backbone")
    if isinstance(backbone, str) and backbone.startswith((".", "/")):
        _set_dotted(raw, "model.backbone", str((base / backbone).resolve()))
    cfg = config_from_dict(raw, str(path))
    if overrides:
        cfg = apply_overrides(cfg, dict(parse_override(o) for o in overrides), "--set")
        # Paths given on the command line are relative to the working directory; make them
        # absolute here because Ray workers run elsewhere.
        for dotted in _INPUT_PATHS:
            section, field = dotted.split(".")
            value = getattr(getattr(cfg, section), field)
            if value and not Path(value).is_absolute():
                setattr(getattr(cfg, section), field, str(Path(value).resolve()))
    return cfg


def save_config(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")
