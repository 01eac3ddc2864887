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
