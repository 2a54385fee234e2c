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


def test_frozen_word_embeddings_train_only_the_added_rows_and_save_as_a_plain_encoder(tiny_backbone, tmp_path):
    """model.freeze_word_embeddings: the backbone's own rows never change, not even when the
    backbone is switched on again (the two-stage recipe), while rows of tokens the task added
    (entity markers) learn; the checkpoint holds one plain embedding matrix."""
    from spanfirst.backbone import AddedRowsEmbedding, build_encoder
    from spanfirst.checkpoint import _plain_encoder
    from spanfirst.train.loop import set_backbone_trainable

    tok = load_tokenizer(str(tiny_backbone))
    own = len(tok)
    tok.add_tokens(["[E1]", "[/E1]"], special_tokens=True)
    for lora in (False, True):
        enc = build_encoder(str(tiny_backbone), tok, LoraConfig(enabled=lora, r=4), freeze_word_embeddings=True)
        emb = enc.get_input_embeddings()
        assert isinstance(emb, AddedRowsEmbedding) and emb.num_embeddings == len(tok)
        holder = torch.nn.Module()
        holder.encoder = enc
        set_backbone_trainable(holder, True, lora)
        before = emb.pretrained.clone()
        opt = torch.optim.AdamW([p for p in enc.parameters() if p.requires_grad], lr=0.1)
        ids = tok(["[E1] John [/E1] lives in Paris."], return_tensors="pt")
        enc(**ids).last_hidden_state.pow(2).mean().backward()
        opt.step()
        assert torch.equal(emb.pretrained, before) and "pretrained" not in dict(enc.named_parameters())
        assert emb.added.grad is not None and emb.added.grad[: len(tok) - own].abs().sum() > 0
    enc = build_encoder(str(tiny_backbone), tok, LoraConfig(), freeze_word_embeddings=True)
    enc.get_input_embeddings().added.data += 1.0
    plain = _plain_encoder(enc)
    assert isinstance(enc.get_input_embeddings(), AddedRowsEmbedding)  # the training model is untouched
    plain.save_pretrained(tmp_path)
    reloaded = load_encoder(str(tmp_path))
    enc.eval(), reloaded.eval()
    ids = tok(["[E1] John [/E1] lives in Paris."], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(reloaded(**ids).last_hidden_state, enc(**ids).last_hidden_state, atol=1e-6)
