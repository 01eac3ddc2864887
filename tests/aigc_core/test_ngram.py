"""The n-gram baseline: hand-computed probabilities, perplexity, sampling, save/load."""
from __future__ import annotations

import math

import numpy as np
import pytest

from aigc_core.models.ngram import NgramConfig, NgramLanguageModel

# Three sentences. Padded for a bigram model:
#   <s> a b </s>   <s> a b </s>   <s> b </s>
# Bigram counts: (<s>,a)=2 (<s>,b)=1 (a,b)=2 (b,</s>)=3; context totals <s>:3 a:2 b:3.
# Predictable types (everything but <s>): <unk>, </s>, a, b  ->  |V| = 4.
CORPUS = ["a b", "a b", "b"]


def test_it_matches_a_hand_computed_add_one_perplexity():
    lm = NgramLanguageModel(NgramConfig(order=2, smoothing="add_k", k=1.0)).fit(CORPUS)
    # Add-one: P(w|h) = (c(h,w) + 1) / (c(h) + 4)
    #   "a b":  P(a|<s>) = 3/7, P(b|a) = 3/6, P(</s>|b) = 4/7   (twice)
    #   "b":    P(b|<s>) = 2/7, P(</s>|b) = 4/7
    # Product = (3/7 * 1/2 * 4/7)^2 * (2/7 * 4/7) = 288 / 117649 over N = 8 predicted tokens,
    # so perplexity = (117649 / 288) ** (1/8) ~= 2.1204.
    expected = (117649 / 288) ** (1 / 8)
    assert lm.perplexity(CORPUS) == pytest.approx(expected, rel=1e-12)
    assert math.exp(lm.logprob("b", ["a"])) == pytest.approx(3 / 6)


def test_it_matches_hand_computed_kneser_ney_probabilities():
    lm = NgramLanguageModel(NgramConfig(order=2, smoothing="kneser_ney", discount=0.5)).fit(CORPUS)
    # Continuation counts N1+(.w) over the 4 distinct bigrams: a:1, b:2, </s>:1; 3 types seen.
    # Unigram level, interpolated with uniform 1/4 using the freed mass D*3/4 = 0.375:
    #   p1(a) = (1 - .5)/4 + .375/4 = 0.21875;  p1(b) = (2 - .5)/4 + .375/4 = 0.46875
    # Bigram level, context a (count 2, 1 distinct follower):
    #   P(b|a)    = (2 - .5)/2 + (.5 * 1/2) * p1(b) = 0.75 + 0.25 * 0.46875 = 0.8671875
    #   P(</s>|a) = 0 + 0.25 * p1(</s>) = 0.25 * 0.21875 = 0.0546875
    # Context <s> (count 3, 2 distinct followers):
    #   P(a|<s>)  = (2 - .5)/3 + (.5 * 2/3) * p1(a) = 0.5 + 0.21875/3
    assert math.exp(lm.logprob("b", ["a"])) == pytest.approx(0.8671875)
    assert math.exp(lm.logprob("</s>", ["a"])) == pytest.approx(0.0546875)
    assert math.exp(lm.logprob("a", [])) == pytest.approx(0.5 + 0.21875 / 3)


@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_k"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_it_gives_distributions_that_sum_to_one(order, smoothing):
    lm = NgramLanguageModel(NgramConfig(order=order, smoothing=smoothing)).fit(
        ["the cat sat", "the dog sat down", "a cat ran"]
    )
    for context in ([], ["the"], ["the", "cat"], ["never", "seen"]):
        p = lm.next_token_distribution(lm.ids(context))
        assert p.sum() == pytest.approx(1.0)
        assert p[lm.bos_id] == 0.0


def test_it_prefers_higher_orders_on_repetitive_text():
    corpus = ["the cat sat on the mat", "the dog sat on the rug"] * 5
    uni = NgramLanguageModel(NgramConfig(order=1)).fit(corpus)
    tri = NgramLanguageModel(NgramConfig(order=3)).fit(corpus)
    assert tri.perplexity(corpus) < uni.perplexity(corpus)


def test_it_handles_unknown_words_and_token_ids():
    lm = NgramLanguageModel(NgramConfig(order=2)).fit([[5, 6, 7], [5, 7]])
    assert lm.vocab[3:] == [5, 6, 7]
    assert math.isfinite(lm.perplexity([[5, 99]]))  # 99 -> <unk>, still a finite probability


def test_it_samples_repeatably_without_unk():
    lm = NgramLanguageModel(NgramConfig(order=2)).fit(["the cat sat", "the dog sat", "a cat ran"])
    first = lm.sample(["the"], max_tokens=10, seed=3)
    assert first == lm.sample(["the"], max_tokens=10, seed=3)
    assert "<unk>" not in first and "<s>" not in first


def test_it_saves_and_loads_the_same_model(tmp_path):
    lm = NgramLanguageModel(NgramConfig(order=3)).fit(["the cat sat", "the dog sat", [1, 2, 3]])
    lm.save(tmp_path)
    again = NgramLanguageModel.load(tmp_path)
    assert again.vocab == lm.vocab
    for ctx in ([], ["the"], ["the", "cat"], [1, 2]):
        np.testing.assert_allclose(
            again.next_token_distribution(again.ids(ctx)), lm.next_token_distribution(lm.ids(ctx))
        )


def test_it_models_subword_tokens_when_given_a_tokenizer(tmp_path):
    from aigc_core.data import train_tokenizer
    from aigc_core.generation import GenerationConfig, NgramAdapter, generate

    texts = ["the cat sat on the mat", "the dog sat on the rug", "a cat ran to the dog"]
    tok = train_tokenizer(texts, vocab_size=300, min_frequency=1)
    with_tok = NgramLanguageModel(NgramConfig(order=3), tokenizer=tok).fit(texts)
    on_ids = NgramLanguageModel(NgramConfig(order=3)).fit([tok.encode(t) for t in texts])
    # Same tokens, same model: strings go through the tokenizer, so the perplexities agree.
    assert with_tok.perplexity(texts) == pytest.approx(on_ids.perplexity([tok.encode(t) for t in texts]))
    with_tok.save(tmp_path)
    again = NgramLanguageModel.load(tmp_path)
    assert again.tokenizer is not None
    assert again.perplexity(texts) == pytest.approx(with_tok.perplexity(texts))
    text = generate(NgramAdapter(again), "the", GenerationConfig(max_new_tokens=12, seed=0))
    assert text and "<" not in text
