"""Area 5 — language modelling on BANKING77 texts with the engine's models:
n-gram Kneser-Ney (``aigc_core.models.ngram``), the seed's GRU and a small
causal Transformer (``aigc_core.models.language_model``), all on ONE byte-level
BPE tokenizer (``aigc_core.data.train_tokenizer``) trained on the training
texts. Perplexity per token on the official test texts (each text closed by an
end-of-text token, which is predicted too), and sampling speed through the
engine's decoder (``aigc_core.generation.generate``, temperature 1, top-k 50).
"""
from __future__ import annotations

import random
import time

from tqdm.auto import tqdm

from bench import datasets
from bench.harness import Stopwatch, median, table

VOCAB = 2000
PROMPTS = ["I", "My card", "How do I", "Why is", "Can I"]
SEED = 1234


def sampling_speed(model, n_calls: int, new_tokens: int, tokenizer=None) -> dict:
    from aigc_core.generation.decoding import GenerationConfig, generate

    times = []
    for i in range(n_calls):
        cfg = GenerationConfig(max_new_tokens=new_tokens, temperature=1.0, top_k=50, seed=i, stop_at_eos=False)
        t0 = time.perf_counter()
        # Short prompts, varied per call, as a user starts a message.
        generate(model, PROMPTS[i % len(PROMPTS)], cfg, tokenizer)
        times.append(time.perf_counter() - t0)
    sample = generate(model, "I want to", GenerationConfig(max_new_tokens=20, temperature=0.8, top_k=50, seed=7),
                      tokenizer)
    return {"tokens_per_s": new_tokens / median(times), "calls": n_calls, "new_tokens_per_call": new_tokens,
            "sample": "I want to" + sample}


def run(quick: bool) -> dict:
    from aigc_core.data import train_tokenizer
    from aigc_core.generation.ngram_adapter import NgramAdapter
    from aigc_core.models.language_model import (
        LanguageModelConfig,
        language_model_perplexity,
        train_language_model,
    )
    from aigc_core.models.ngram import NgramConfig, NgramLanguageModel
    from aigc_core.training import TrainConfig

    sw = Stopwatch()
    train, test, _, data_hash = datasets.banking77()
    texts = train.texts[:]
    random.Random(SEED).shuffle(texts)
    n_val = len(texts) // 10
    val_texts, train_texts = texts[:n_val], texts[n_val:]
    with sw("tokenizer"):
        tok = train_tokenizer(train_texts, vocab_size=VOCAB)
    enc = lambda ts: [tok.encode(t) for t in ts]  # noqa: E731
    test_ids = enc(test.texts)
    n_test_tokens = sum(len(t) + 1 for t in test_ids)
    results, rows = {}, []
    epochs = 3 if quick else 12
    n_calls, new_tokens = (5, 64) if quick else (20, 64)

    for order in (2, 3, 4):
        with sw(f"ngram{order}_fit"):
            t0 = time.perf_counter()
            ng = NgramLanguageModel(NgramConfig(order=order)).fit(enc(train_texts))
            fit_s = time.perf_counter() - t0
        ppl = ng.perplexity(test_ids)
        speed = sampling_speed(NgramAdapter(ng, tok), n_calls, new_tokens)
        results[f"ngram{order}"] = {"test_perplexity": ppl, "val_perplexity": ng.perplexity(enc(val_texts)),
                                    "fit_s": fit_s, **speed}
        rows.append([f"n-gram order {order}, interpolated Kneser-Ney (d=0.75)", "—", ppl, speed["tokens_per_s"], fit_s])

    specs = {
        "gru": (LanguageModelConfig(family="gru", block_size=64, d_model=256, n_layers=1, dropout=0.2), 3e-3),
        "transformer": (LanguageModelConfig(family="transformer", block_size=64, d_model=192, n_layers=3, n_heads=4,
                                            dropout=0.2), 1e-3),
    }
    for name, (cfg, lr) in specs.items():
        bar = tqdm(total=100, desc=f"train {name}", unit="%", leave=False)

        def cb(pct, msg, bar=bar):
            bar.n = min(100, int(pct))
            bar.set_postfix_str(msg[:40])
            bar.refresh()

        with sw(f"{name}_train"):
            model, m = train_language_model(
                train_texts, tok, cfg, TrainConfig(epochs=epochs, batch_size=32, lr=lr, patience=3, seed=SEED,
                                                   progress_bar=False), val_texts=val_texts, on_progress=cb)
        bar.close()
        with sw(f"{name}_test"):
            test_ppl = language_model_perplexity(model, test.texts)
        speed = sampling_speed(model, n_calls, new_tokens)
        results[name] = {"test_perplexity": test_ppl["perplexity"], "test_tokens": test_ppl["tokens"],
                         "val_perplexity": m.get("val_perplexity"), "parameters": m["parameters"],
                         "best_epoch": m["best_epoch"], "epochs": epochs, "train_s": m["wall_s"],
                         "config": cfg.__dict__, "lr": lr, **speed}
        rows.append([f"{name} ({m['parameters'] / 1e6:.2f} M params, best epoch {m['best_epoch']} of {epochs})",
                     m["parameters"], test_ppl["perplexity"], speed["tokens_per_s"], m["wall_s"]])

    best_ngram = min(results[f"ngram{o}"]["test_perplexity"] for o in (2, 3, 4))
    notes = [
        f"One byte-level BPE tokenizer ({tok.vocab_size} tokens) trained on 90% of BANKING77 train; 10% is the "
        f"validation set for early stopping; test = the official {len(test.texts):,} test texts ({n_test_tokens:,} tokens "
        "incl. one end-of-text per text).",
        "Neural perplexity is measured over the test texts concatenated in blocks of 64 tokens (the model sees the "
        "previous text as context inside a block); the n-gram model scores each text on its own, padded with start "
        "symbols. Token counts are the same (tokens + one end marker per text).",
        f"Sampling: engine decoder, temperature 1, top-k 50, {new_tokens} new tokens per call, median of {n_calls} calls, "
        "batch 1, no KV cache (the full context is re-run for each token).",
        "Samples: " + " | ".join(f"{k}: {v['sample']!r}" for k, v in results.items() if k in ("ngram3", "gru",
                                                                                              "transformer")),
    ]
    if quick:
        notes.append(f"Quick mode: {epochs} epochs.")
    return {
        "summary": "BANKING77 train texts (no labels), one tokenizer, three model families.",
        "data": {"hash": data_hash, "train_texts": len(train_texts), "val_texts": len(val_texts),
                 "test_texts": len(test.texts), "test_tokens": n_test_tokens, "vocab": tok.vocab_size},
        "results": results,
        "wall_times": sw.times,
        "tables": [table("Language models on BANKING77 texts: test perplexity (lower is better) and sampling speed",
                         ["model", "parameters", "test perplexity", "sampling tokens/s", "train s"], rows, notes)],
        "published": ["No published perplexity exists for BANKING77; the n-gram model measured in the same run "
                      f"(best {best_ngram:.2f}) is the baseline."],
        "below_published": [f"{k} test perplexity {v['test_perplexity']:.2f} is worse than the best n-gram ({best_ngram:.2f})."
                            for k, v in results.items() if k in ("gru", "transformer")
                            and v["test_perplexity"] > best_ngram],
    }
