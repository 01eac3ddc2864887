"""GRU and Transformer language models: shapes, causality, training, save/load, generation."""
from __future__ import annotations

import math

import pytest
import torch

from aigc_core.data import train_tokenizer
from aigc_core.device import get_device
from aigc_core.generation import GenerationConfig, generate, stream
from aigc_core.models.language_model import (
    GRULanguageModel,
    LanguageModelConfig,
    TransformerLanguageModel,
    build_language_model,
    language_model_perplexity,
    lm_blocks,
    load_language_model,
    train_language_model,
)
from aigc_core.training import TrainConfig

ANIMALS, VERBS, THINGS = ["cat", "dog", "bird"], ["sees", "likes", "chases"], ["ball", "mouse", "tree"]
CORPUS = [f"the {a} {v} the {t}" for a in ANIMALS for v in VERBS for t in THINGS]  # 27 sentences


def tiny(family: str, vocab_size: int = 50) -> LanguageModelConfig:
    return LanguageModelConfig(
        family=family, vocab_size=vocab_size, block_size=16, d_model=32, n_layers=1, n_heads=2, dropout=0.0
    )


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models on 2 shared cores: OpenMP sync costs more than a second thread gains.
    get_device()  # sets the engine's thread count once; this fixture then overrides it
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS, vocab_size=300, min_frequency=1)


@pytest.mark.parametrize("family", ["gru", "transformer"])
def test_it_maps_ids_to_logits_per_position(family):
    model = build_language_model(tiny(family))
    ids = torch.randint(0, 50, (3, 7))
    assert model(ids).shape == (3, 7, 50)
    assert model.next_token_logits(ids).shape == (3, 50)


@pytest.mark.parametrize("family", ["gru", "transformer"])
def test_it_never_looks_at_future_tokens(family):
    torch.manual_seed(0)
    model = build_language_model(tiny(family)).eval()
    a = torch.randint(0, 50, (1, 8))
    b = a.clone()
    b[0, 5:] = (b[0, 5:] + 1) % 50
    with torch.no_grad():
        torch.testing.assert_close(model(a)[:, :5], model(b)[:, :5])


def test_it_keeps_only_the_last_block_of_a_long_context():
    model = build_language_model(tiny("transformer")).eval()
    long = torch.randint(0, 50, (1, 40))
    torch.testing.assert_close(model.next_token_logits(long), model.next_token_logits(long[:, -16:]))


def test_it_ties_transformer_embeddings_and_cuts_padded_blocks():
    model = TransformerLanguageModel(tiny("transformer"))
    assert model.lm_head.weight is model.wte.weight
    pairs = lm_blocks(list(range(10)), block_size=4)
    assert [x.tolist() for x, _ in pairs] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 0, 0, 0]]
    assert pairs[-1][1].tolist() == [9, -100, -100, -100]


@pytest.mark.parametrize("family", ["gru", "transformer"])
def test_it_trains_and_the_loss_falls(family, tokenizer):
    progress = []
    model, metrics = train_language_model(
        CORPUS,
        tokenizer,
        tiny(family),
        TrainConfig(epochs=6, batch_size=4, lr=1e-2, warmup_ratio=0.0, patience=0, progress_bar=False),
        val_texts=CORPUS[:4],
        on_progress=lambda pct, msg: progress.append(pct),
    )
    losses = [row["train_loss"] for row in metrics["history"]]
    assert losses[-1] < losses[0] * 0.8
    assert metrics["val_perplexity"] == pytest.approx(math.exp(metrics["val_loss"]), rel=1e-6)
    assert metrics["val_perplexity"] < tokenizer.vocab_size  # better than uniform guessing
    assert model.config.vocab_size == tokenizer.vocab_size
    assert progress and progress[-1] == 100.0
    assert isinstance(model, GRULanguageModel if family == "gru" else TransformerLanguageModel)


def test_it_saves_and_loads_weights_config_and_tokenizer(tmp_path, tokenizer):
    model, _ = train_language_model(
        CORPUS, tokenizer, tiny("transformer"),
        TrainConfig(epochs=2, batch_size=4, lr=1e-2, progress_bar=False), val_texts=CORPUS[:3],
    )
    model.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"model.safetensors", "config.json", "tokenizer.json"}
    again = load_language_model(tmp_path)
    ids = torch.tensor([tokenizer.encode("the cat sees")])
    torch.testing.assert_close(again.next_token_logits(ids), model.next_token_logits(ids))
    cfg = GenerationConfig(max_new_tokens=8, seed=3)
    assert generate(again, "the cat", cfg) == generate(model, "the cat", cfg)
    assert "".join(stream(again, "the cat", cfg)) == generate(again, "the cat", cfg)
    assert isinstance(generate(again, "", cfg), str)  # an empty prompt starts after an EOS


def test_it_reports_perplexity_on_new_texts(tokenizer):
    model = build_language_model(tiny("gru", vocab_size=tokenizer.vocab_size))
    model.config.eos_token_id = tokenizer.eos_id
    model.tokenizer = tokenizer
    out = language_model_perplexity(model, CORPUS[:5])
    # An untrained model is close to uniform over the vocabulary.
    assert out["perplexity"] == pytest.approx(tokenizer.vocab_size, rel=0.2)
    assert out["tokens"] > 5
