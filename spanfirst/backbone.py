"""Backbone encoders: load any HuggingFace encoder, build the offline tiny one, add LoRA.

``model.backbone: tiny`` builds a 2-layer XLM-R (a SentencePiece-style Unigram tokenizer whose
vocabulary is learnt from the run's training texts by deterministic EM, so the same texts give the
same files on every machine; config written with ``save_pretrained``) into a content-addressed
cache folder and then loads it through exactly the same ``from_pretrained`` path as a hub model.
Nothing is downloaded at run time for it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from spanfirst.config import LoraConfig, TinyBackboneConfig

TINY = "tiny"
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def cache_dir() -> Path:
    return Path(os.environ.get("SPANFIRST_CACHE", Path.home() / ".cache" / "spanfirst"))


# The tiny tokenizer's text pipeline. Pieces never cross whitespace, punctuation or a digit
# (the pre-tokenizer splits those off before the model sees the text), so entity boundaries such
# as "(33)" fall on token boundaries: (, 3, 3, ). Words carry SentencePiece's leading "▁".
TINY_PIECE_MARK = "▁"
TINY_MAX_PIECE_CHARS = 10  # longest multi-character piece considered
TINY_SHRINK = 0.75  # each pruning round keeps this share of the pieces (SentencePiece's default)
TINY_EM_STEPS = 2  # EM iterations per pruning round (SentencePiece's num_sub_iterations)
TINY_SEEDS_PER_PIECE = 8  # at most this many seed substrings per piece of the requested size


def _digamma(x: float) -> float:
    """The digamma function (asymptotic series after shifting ``x`` to >= 7), as in SentencePiece."""
    r = 0.0
    while x < 7.0:
        r -= 1.0 / x
        x += 1.0
    x -= 0.5
    xx = 1.0 / x
    xx2 = xx * xx
    xx4 = xx2 * xx2
    return r + math.log(x) + xx2 / 24.0 - 7.0 / 960.0 * xx4 + 31.0 / 8064.0 * xx4 * xx2 - 127.0 / 30720.0 * xx4 * xx4


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def _tiny_unigram(word_counts: dict[str, int], size: int) -> list[tuple[str, float]]:
    """A Unigram (SentencePiece-style) vocabulary of at most ``size`` pieces for ``word_counts``,
    learnt in pure Python so that it is reproducible by construction: words, pieces and lattice
    edges are visited in a fixed (sorted) order, expected counts and scores are rounded to 6
    decimals after every step and losses to 12, and every tie is broken by the piece's text, so
    nothing depends on hash order, threads or the last bits of a float. Every character of the
    words is a piece, whatever ``size`` says.

    The algorithm is SentencePiece's (as the ``tokenizers`` trainer it replaces ran it), per
    distinct pre-tokenised word weighted by its count (pieces never cross words, so this is the
    same as per sentence):

    - seeds: every character, plus the substrings (2 to ``TINY_MAX_PIECE_CHARS`` characters) that
      a suffix array over the distinct words would give - seen at least twice and right-maximal
      (followed by two different characters or the word's end) - scored by occurrences x length;
    - rounds of ``TINY_EM_STEPS`` EM iterations: expected piece counts by forward-backward over
      each word's segmentation lattice (log space), then the Bayesian (digamma) M-step that
      drops pieces expected less than 0.5 times;
    - after each round, pruning by loss: the likelihood lost if a piece's Viterbi uses went to
      its best split into the other pieces; each round keeps ``TINY_SHRINK`` of the pieces,
      down to ``1.1 * size``, and a last pruning by the same loss cuts to ``size``.

    Returns ``(piece, log-probability)`` best first."""
    if not word_counts:
        return []
    words = sorted(word_counts)
    counts = [word_counts[w] for w in words]
    chars: dict[str, int] = {}
    occurrences: dict[str, int] = {}  # in the distinct words, as a suffix array over them counts
    follower: dict[str, str] = {}  # the character after each substring; "" once two differ
    for w, f in zip(words, counts):
        n = len(w)
        for s in range(n):
            chars[w[s]] = chars.get(w[s], 0) + f
            for e in range(s + 2, min(n, s + TINY_MAX_PIECE_CHARS) + 1):
                p, nxt = w[s:e], (w[e] if e < n else "\0")
                occurrences[p] = occurrences.get(p, 0) + 1
                if follower.setdefault(p, nxt) != nxt:
                    follower[p] = ""
    seeds = sorted(
        (p for p, c in occurrences.items() if c >= 2 and follower[p] == ""),
        key=lambda p: (-occurrences[p] * len(p), p),
    )[: TINY_SEEDS_PER_PIECE * size]
    seed_set = set(seeds)
    # Each word's lattice: its candidate pieces as (start, end, piece), sorted by end then start.
    lattices = [
        [(s, e, w[s:e]) for e in range(1, len(w) + 1) for s in range(max(0, e - TINY_MAX_PIECE_CHARS), e)
         if e - s == 1 or w[s:e] in seed_set]
        for w in words
    ]
    seed_scores = {p: occurrences[p] * len(p) for p in seeds} | chars
    occurrences.clear()
    follower.clear()
    total = sum(seed_scores[p] for p in sorted(seed_scores))
    logp = {p: round(math.log(seed_scores[p] / total), 6) for p in sorted(seed_scores)}

    def em_step(logp: dict[str, float]) -> dict[str, float]:
        expected = dict.fromkeys(logp, 0.0)
        for w, f, lattice in zip(words, counts, lattices):
            n = len(w)
            edges = [(s, e, p, logp[p]) for s, e, p in lattice if p in logp]
            alpha = [0.0] + [-math.inf] * n
            for s, e, _, lp in edges:  # by end: alpha[s] is complete when used
                alpha[e] = _logaddexp(alpha[e], alpha[s] + lp)
            beta = [-math.inf] * n + [0.0]
            for s, e, _, lp in reversed(edges):  # edges leaving e come before those ending there
                beta[s] = _logaddexp(beta[s], lp + beta[e])
            z = alpha[n]
            for s, e, p, lp in edges:
                expected[p] += f * math.exp(alpha[s] + lp + beta[e] - z)
        # M-step, Bayesian (digamma) as SentencePiece: a sparse prior that drops rare pieces.
        rounded = {p: round(c, 6) for p, c in expected.items()}
        kept = {p: max(c, 0.5) for p, c in rounded.items() if p in chars or c >= 0.5}
        logsum = _digamma(sum(kept[p] for p in sorted(kept)))
        return {p: round(_digamma(kept[p]) - logsum, 6) for p in sorted(kept)}

    def viterbi(word: str, logp: dict[str, float]) -> list[str]:
        n = len(word)
        best, back = [0.0] + [-math.inf] * n, [0] * (n + 1)
        for e in range(1, n + 1):
            for s in range(max(0, e - TINY_MAX_PIECE_CHARS), e):  # ties: the longer piece
                lp = logp.get(word[s:e])
                if lp is not None and best[s] + lp > best[e]:
                    best[e], back[e] = best[s] + lp, s
        pieces, e = [], n
        while e > 0:
            pieces.append(word[back[e]:e])
            e = back[e]
        return pieces[::-1]

    def prune(logp: dict[str, float], n_keep: int) -> dict[str, float]:
        """The ``n_keep`` multi-character pieces whose removal loses the most likelihood, and the
        characters. A piece's Viterbi uses are assumed to go to its best split without it."""
        used = dict.fromkeys(logp, 0)
        for w, f in zip(words, counts):
            for p in viterbi(w, logp):
                used[p] += f
        total = sum(used[p] for p in sorted(used))
        loss = {}
        for p in sorted(logp):
            if p in chars or used[p] == 0:  # never on a best path: nothing lost without it
                continue
            lp = logp.pop(p)
            alt = viterbi(p, logp)
            logp[p] = lp
            logsum_alt = math.log(total + used[p] * (len(alt) - 1))
            logp_alt = sum(math.log(used[q] + used[p]) - logsum_alt for q in alt)
            loss[p] = round(used[p] / total * (math.log(used[p] / total) - logp_alt), 12)
        keep = sorted(loss, key=lambda p: (-loss[p], p))[: max(0, n_keep)]
        return {p: logp[p] for p in sorted(keep + list(chars))}

    desired = int(size * 1.1)
    while True:
        for _ in range(TINY_EM_STEPS):
            logp = em_step(logp)
        if len(logp) <= desired:
            break
        logp = prune(logp, max(desired, int(len(logp) * TINY_SHRINK)) - len(chars))
    if len(logp) > size:
        logp = prune(logp, size - len(chars))
    return sorted(logp.items(), key=lambda ps: (-ps[1], ps[0]))


def build_tiny_backbone(texts: Iterable[str], out_dir: str | Path, cfg: TinyBackboneConfig) -> Path:
    """Learn a Unigram (SentencePiece-style) tokenizer on ``texts`` and save a random-init XLM-R
    encoder of ``cfg``'s shape beside it; returns ``out_dir``.

    Everything written is a function of ``texts`` and ``cfg`` alone: the same bytes in every
    process and on every machine (the vocabulary is learnt in pure Python in a fixed order, see
    ``_tiny_unigram``; the ``tokenizers`` Unigram trainer it replaces was not reproducible). The
    tokenizer is saved as a plain fast tokenizer, so ``AutoTokenizer`` reloads tokenizer.json as
    written - the pipeline it was trained with - rather than rebuilding XLM-R's own."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = list(texts)
    # Every character seen must be a piece: a corpus in a script with thousands of characters
    # (Korean, Chinese, Japanese) raises the vocabulary to fit rather than mapping them to <unk>.
    alphabet = len(set("".join(texts)))
    vocab_size = max(cfg.vocab_size, alphabet + len(SPECIAL_TOKENS) + 64)
    normalizer = normalizers.Sequence([normalizers.Nmt(), normalizers.NFKC()])
    pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement=TINY_PIECE_MARK, prepend_scheme="always"),
        pre_tokenizers.Punctuation(),
        pre_tokenizers.Digits(individual_digits=True),
    ])
    word_counts: dict[str, int] = {}
    for text in texts:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            word_counts[word] = word_counts.get(word, 0) + 1
    pieces = _tiny_unigram(word_counts, vocab_size - len(SPECIAL_TOKENS))
    vocab = [(t, 0.0) for t in SPECIAL_TOKENS] + [(p, s) for p, s in pieces if p not in SPECIAL_TOKENS]
    backend = Tokenizer(models.Unigram(vocab, unk_id=SPECIAL_TOKENS.index("<unk>"), byte_fallback=False))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.Metaspace(replacement=TINY_PIECE_MARK, prepend_scheme="always")
    backend.add_special_tokens(SPECIAL_TOKENS)
    bos, eos = backend.token_to_id("<s>"), backend.token_to_id("</s>")
    backend.post_processor = TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=512,
    )
    tokenizer.save_pretrained(out)
    torch.manual_seed(cfg.seed)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
        max_position_embeddings=514, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, type_vocab_size=1,
    )
    XLMRobertaModel(config).save_pretrained(out)
    return out


def ensure_tiny_backbone(texts: list[str], cfg: TinyBackboneConfig, root: Path | None = None) -> Path:
    """The tiny backbone for these texts and shape, built once and reused (keyed by content)."""
    digest = hashlib.sha256(json.dumps([cfg.model_dump(), texts], ensure_ascii=False).encode()).hexdigest()[:16]
    out = (root or cache_dir()) / f"tiny-xlmr-{digest}"
    if not (out / "config.json").is_file() or not (out / "tokenizer.json").is_file():
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        build_tiny_backbone(texts, tmp, cfg)
        try:
            tmp.rename(out)
        except OSError:  # another process finished first; theirs is identical
            pass
    return out


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name_or_path)
    if not tok.is_fast:
        raise ValueError(f"{name_or_path}: a fast tokenizer is required (offset mapping)")
    return tok


def load_encoder(name_or_path: str) -> nn.Module:
    from transformers import AutoModel

    # The pooler is never used by span/relation heads: not building it keeps DDP from waiting on
    # gradients that never come (and saved checkpoints carry none).
    try:
        encoder = AutoModel.from_pretrained(name_or_path, add_pooling_layer=False)
    except TypeError:  # encoders without that argument
        encoder = AutoModel.from_pretrained(name_or_path)
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def apply_lora(encoder: nn.Module, cfg: LoraConfig, train_embeddings: bool = False) -> nn.Module:
    """Wrap ``encoder`` with LoRA adapters on the configured attention projections.

    ``train_embeddings``: the input embeddings train fully too (peft ``modules_to_save``), for
    tokens added to the vocabulary (RE entity markers) that would otherwise stay random.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, m in encoder.named_modules() if isinstance(m, nn.Linear)}
    missing = [t for t in cfg.target_modules if t not in names]
    if missing:
        raise ValueError(
            f"model.lora.target_modules: {missing} not found in the backbone; its linear layers are {sorted(names)}"
        )
    to_save = None
    if train_embeddings:
        embeddings = encoder.get_input_embeddings()
        to_save = [n.rsplit(".", 1)[-1] for n, m in encoder.named_modules() if m is embeddings]
    peft_cfg = PeftLoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules),
        modules_to_save=to_save,
    )
    return get_peft_model(encoder, peft_cfg)


def resolve_backbone(backbone: str, tiny: TinyBackboneConfig, train_texts: list[str]) -> str:
    """``model.backbone`` as given (a hub name or a path); ``tiny``: the offline tiny backbone built
    from ``train_texts`` (the texts the task's tokenizer will see) and cached."""
    if backbone == TINY:
        return str(ensure_tiny_backbone(train_texts, tiny))
    return backbone


class AddedRowsEmbedding(nn.Module):
    """Input word embeddings whose pretrained rows are a frozen buffer and whose rows for tokens
    the task added (the last ``added`` ids) are a trained parameter (``model.freeze_word_embeddings``).

    A buffer, not a parameter without gradients: nothing that switches the backbone's parameters
    on (the two-stage recipe, LoRA) can make it train, and the optimizer never holds state for it.
    :meth:`merged` gives the plain ``nn.Embedding`` a checkpoint saves."""

    def __init__(self, embedding: nn.Embedding, pretrained_rows: int) -> None:
        super().__init__()
        weight = embedding.weight.detach()
        self.register_buffer("pretrained", weight[:pretrained_rows].clone())
        self.added = nn.Parameter(weight[pretrained_rows:].clone())
        self.padding_idx = embedding.padding_idx

    @property
    def num_embeddings(self) -> int:
        return self.pretrained.shape[0] + self.added.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.pretrained.shape[1]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        n = self.pretrained.shape[0]
        out = nn.functional.embedding(input_ids.clamp(max=n - 1), self.pretrained)
        new = input_ids >= n
        if self.added.shape[0] and bool(new.any()):
            added = nn.functional.embedding((input_ids - n).clamp(min=0), self.added)
            out = torch.where(new.unsqueeze(-1), added, out)
        return out

    def merged(self) -> nn.Embedding:
        """A plain embedding with every row (what ``save_pretrained`` writes)."""
        weight = torch.cat([self.pretrained, self.added.detach()])
        return nn.Embedding.from_pretrained(weight, freeze=False, padding_idx=self.padding_idx)


def build_encoder(name_or_path: str, tokenizer, lora: LoraConfig, freeze_word_embeddings: bool = False) -> nn.Module:
    """The encoder for training: embeddings resized to tokens the task added to ``tokenizer``
    (entity markers, prompt tokens); ``freeze_word_embeddings``: only those added rows of the word
    embeddings train (:class:`AddedRowsEmbedding`); with LoRA, adapters (and the word embeddings
    train fully where tokens were added, unless frozen)."""
    encoder = load_encoder(name_or_path)
    added = len(tokenizer) > encoder.get_input_embeddings().num_embeddings
    if added:
        encoder.resize_token_embeddings(len(tokenizer))
    if freeze_word_embeddings:
        # the rows from the backbone's own vocabulary on (an encoder may have spare rows past it,
        # which the task's added tokens then take) are the task's: they train
        own = min(len(load_tokenizer(name_or_path)), encoder.get_input_embeddings().num_embeddings)
        encoder.set_input_embeddings(AddedRowsEmbedding(encoder.get_input_embeddings(), own))
    if lora.enabled:
        encoder = apply_lora(encoder, lora, train_embeddings=added and not freeze_word_embeddings)
    return encoder
