"""The offline tiny backbone loads through the same from_pretrained path as a hub model."""

import torch

from spanfirst.backbone import apply_lora, ensure_tiny_backbone, load_encoder, load_tokenizer
from spanfirst.config import LoraConfig, TinyBackboneConfig


def test_tiny_backbone_is_cached_and_loads_with_from_pretrained(tmp_path):
    texts = ["가수 김흥국이 왕십리에서 콘서트를 열었다.", "John lives in Paris."] * 5
    cfg = TinyBackboneConfig(vocab_size=150, hidden_size=16, num_heads=2, intermediate_size=32)
    first = ensure_tiny_backbone(texts, cfg, tmp_path)
    assert ensure_tiny_backbone(texts, cfg, tmp_path) == first  # content-addressed: built once
    assert (first / "config.json").is_file() and (first / "tokenizer.json").is_file()
    tok, enc = load_tokenizer(str(first)), load_encoder(str(first))
    batch = tok(["John lives in Paris."], return_tensors="pt")
    hidden = enc(**batch).last_hidden_state
    assert hidden.shape == (1, batch["input_ids"].shape[1], 16)
    assert enc.config.num_hidden_layers == 2


def test_lora_wraps_qkv_only(tiny_backbone):
    enc = apply_lora(load_encoder(str(tiny_backbone)), LoraConfig(enabled=True, r=4))
    trainable = [n for n, p in enc.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == {"query", "key", "value"}
    out = enc(input_ids=torch.tensor([[0, 5, 6, 2]])).last_hidden_state
    assert torch.isfinite(out).all()


def test_lora_unknown_target_names_the_real_modules(tiny_backbone):
    import pytest

    with pytest.raises(ValueError, match="q_proj.*linear layers are"):
        apply_lora(load_encoder(str(tiny_backbone)), LoraConfig(enabled=True, target_modules=["q_proj"]))
