import numpy as np

from aigc_core.retrieval.encoder import EMBED_DIM, encode


def test_it_ranks_paraphrases_above_unrelated_text():
    v = encode(["How do I reset my password?", "I forgot my password, how can I change it?",
                "The central bank raised interest rates."])
    assert v.shape == (3, EMBED_DIM) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_it_keeps_input_order_and_handles_empty():
    texts = ["a much longer sentence about refunds and orders", "hi", "refund please"]
    batched = encode(texts, batch_size=2)
    single = np.stack([encode([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=2e-2)
    assert encode([]).shape == (0, EMBED_DIM)


def test_inference_sees_few_shapes_and_padding_changes_nothing():
    # A worker classifying all day must not meet a new (rows, tokens) shape per batch.
    from aigc_core.retrieval.encoder import bucket_rows, bucket_tokens, shared_encoder

    assert {bucket_rows(n, 64) for n in range(1, 300)} == {1, 2, 4, 8, 16, 32, 64}
    assert len({bucket_tokens(t) for t in range(1, 129)}) == 12 and bucket_tokens(129) == 192
    enc = shared_encoder()
    texts = ["the bank cut its outlook", "shares fell", "profit warning after a weak quarter for the group"]
    exact = enc.tokenize(texts)
    batch = enc.tokenize_padded(texts, rows=4)
    assert tuple(batch["input_ids"].shape) == (4, bucket_tokens(exact["input_ids"].shape[1]))
    assert batch["attention_mask"][:3].sum() == exact["attention_mask"].sum()
    import torch

    with torch.no_grad():
        want = torch.nn.functional.normalize(enc(exact["input_ids"], exact["attention_mask"]), dim=-1)
        got = torch.nn.functional.normalize(enc(batch["input_ids"], batch["attention_mask"])[:3], dim=-1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
