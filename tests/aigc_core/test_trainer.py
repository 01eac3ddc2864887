from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aigc_core.training import TrainConfig, Trainer, metrics, set_seed


def make_data(n: int = 96, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return TensorDataset(x, y)


def loss_fn(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def run(cfg: TrainConfig, val: bool = False, eval_fn=None, on_progress=None):
    set_seed(cfg.seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    train = DataLoader(make_data(), batch_size=16, shuffle=True)
    val_loader = DataLoader(make_data(32, seed=1), batch_size=16) if val else None
    trainer = Trainer(model, cfg, loss_fn=loss_fn, eval_fn=eval_fn, on_progress=on_progress)
    return model, trainer.fit(train, val_loader)


def test_it_lowers_the_loss_and_repeats_with_a_seed():
    cfg = TrainConfig(epochs=4, lr=1e-2, progress_bar=False, patience=0, amp=False)
    calls = []
    model_a, res_a = run(cfg, on_progress=lambda pct, msg: calls.append((pct, msg)))
    model_b, res_b = run(cfg)
    losses = [row["train_loss"] for row in res_a.history]
    assert losses[-1] < losses[0] * 0.8
    assert losses == [row["train_loss"] for row in res_b.history]
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert res_a.steps == 4 * 6 and res_a.wall_s > 0
    assert calls[-1][0] == 100.0 and all(0 <= pct <= 100 for pct, _ in calls)


def test_it_trains_with_fp16_loss_scaling():
    # The CUDA fp16 path (autocast + GradScaler), exercised on the CPU so it runs everywhere.
    from aigc_core.device import DeviceInfo

    set_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    fp16 = DeviceInfo(torch.device("cpu"), torch.float16, torch.get_num_threads())
    trainer = Trainer(model, TrainConfig(epochs=4, lr=1e-2, progress_bar=False, patience=0), loss_fn=loss_fn,
                      device=fp16)
    assert trainer.scaler is not None
    res = trainer.fit(DataLoader(make_data(), batch_size=16, shuffle=True))
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_it_stops_early_and_restores_the_best_weights():
    # A validation score that peaks at epoch 2 and then falls: training must stop
    # after `patience` bad epochs and end with the weights from epoch 2.
    scores = iter([0.5, 0.9, 0.7, 0.6, 0.4, 0.3])
    snapshots = []

    def eval_fn(model, loader):
        snapshots.append([p.detach().clone() for p in model.parameters()])
        return {"macro_f1": next(scores)}

    cfg = TrainConfig(epochs=6, lr=1e-2, progress_bar=False, patience=2, monitor="macro_f1", mode="max")
    model, res = run(cfg, val=True, eval_fn=eval_fn)
    assert res.stopped_early and len(res.history) == 4
    assert res.best_epoch == 2 and res.best_metrics["macro_f1"] == 0.9
    for p, best in zip(model.parameters(), snapshots[1], strict=True):
        assert torch.equal(p.detach(), best)


def test_it_resumes_from_a_checkpoint(tmp_path):
    full_cfg = TrainConfig(epochs=4, lr=1e-2, progress_bar=False, patience=0, amp=False)
    model_full, res_full = run(full_cfg)

    ckpt = tmp_path / "ckpt"
    first = TrainConfig(epochs=4, max_steps=12, lr=1e-2, progress_bar=False, patience=0, amp=False,
                        checkpoint_dir=ckpt)
    _, res_first = run(first)
    assert len(res_first.history) == 2 and (ckpt / "last.pt").exists()
    second = TrainConfig(epochs=4, lr=1e-2, progress_bar=False, patience=0, amp=False, checkpoint_dir=ckpt)
    model_resumed, res_resumed = run(second)
    assert res_resumed.resumed_from_epoch == 2 and res_resumed.steps == res_full.steps
    # max_steps changes the LR schedule of the first leg, so compare shape, not exact values.
    assert len(res_resumed.history) == 4
    assert res_resumed.history[-1]["train_loss"] < res_resumed.history[0]["train_loss"]


def test_it_resumes_to_the_same_weights_as_an_uninterrupted_run(tmp_path):
    cfg = dict(lr=1e-2, progress_bar=False, patience=0, amp=False, warmup_ratio=0.0, schedule="constant")
    model_full, _ = run(TrainConfig(epochs=3, **cfg))
    ckpt = tmp_path / "ckpt"
    run(TrainConfig(epochs=3, max_steps=12, checkpoint_dir=ckpt, **cfg))
    model_resumed, res = run(TrainConfig(epochs=3, checkpoint_dir=ckpt, **cfg))
    assert res.resumed_from_epoch == 2
    for pa, pb in zip(model_full.parameters(), model_resumed.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_it_computes_classification_and_ranking_metrics():
    y_true = ["a", "a", "b", "b", "c"]
    y_pred = ["a", "b", "b", "b", "a"]
    assert metrics.accuracy(y_true, y_pred) == 3 / 5
    report = metrics.per_class_report(y_true, y_pred)
    assert report["b"]["precision"] == 2 / 3 and report["b"]["recall"] == 1.0
    assert report["c"]["f1"] == 0.0
    from sklearn.metrics import f1_score, roc_auc_score

    assert abs(metrics.macro_f1(y_true, y_pred) - f1_score(y_true, y_pred, average="macro")) < 1e-9
    cm, labels = metrics.confusion_matrix(y_true, y_pred)
    assert labels == ["a", "b", "c"] and cm.sum() == 5 and cm[0, 1] == 1
    scores = [0.1, 0.4, 0.35, 0.8, 0.4]
    truth = [0, 0, 1, 1, 1]
    assert abs(metrics.roc_auc(truth, scores) - roc_auc_score(truth, scores)) < 1e-9
    assert abs(metrics.perplexity(2 * 3.0, 2) - 20.0855369) < 1e-6
    ranked = [[3, 1, 2], [5, 6, 7]]
    relevant = [{1}, {9}]
    assert metrics.mrr(ranked, relevant) == (0.5 + 0.0) / 2
    assert metrics.recall_at_k(ranked, relevant, 1) == 0.0
    assert metrics.recall_at_k(ranked, relevant, 2) == 0.5
    import math

    assert abs(metrics.ndcg_at_k(ranked, relevant, 3) - (1 / math.log2(3)) / 2) < 1e-9
