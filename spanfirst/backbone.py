"""Backbone encoders: load any HuggingFace encoder, build the offline tiny one, add LoRA.

``model.backbone: tiny`` builds a 2-layer XLM-R (tokenizer trained with ``tokenizers`` on the
run's training texts, config written with ``save_pretrained``) into a content-addressed cache
folder and then loads it through exactly the same ``from_pretrained`` path as a hub model.
Nothing is downloaded at run time for it.
"""

from __future__ import annotations

import hashlib
import json
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


def build_tiny_backbone(texts: Iterable[str], out_dir: str | Path, cfg: TinyBackboneConfig) -> Path:
    """Train a Unigram (SentencePiece-style) tokenizer on ``texts`` and save a random-init
    XLM-R encoder of ``cfg``'s shape beside it; returns ``out_dir``."""
    from tokenizers import SentencePieceUnigramTokenizer, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = list(texts)
    # Unigram must hold every character it saw: a corpus in a script with thousands of
    # characters (Chinese, Japanese) raises the vocabulary to fit rather than failing.
    alphabet = len(set("".join(texts)))
    vocab_size = max(cfg.vocab_size, alphabet + len(SPECIAL_TOKENS) + 64)
    sp = SentencePieceUnigramTokenizer()
    # Split punctuation and digits off before the Unigram model sees them, so entity boundaries
    # such as "(33)" fall on token boundaries: (, 3, 3, ).
    sp._tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [sp._tokenizer.pre_tokenizer, pre_tokenizers.Punctuation(), pre_tokenizers.Digits(individual_digits=True)]
    )
    sp.train_from_iterator(
        texts, vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="<unk>",
        show_progress=False,
    )
    backend = sp._tokenizer
    bos, eos = backend.token_to_id("<s>"), backend.token_to_id("</s>")
    backend.post_processor = TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    tokenizer = XLMRobertaTokenizerFast(
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
