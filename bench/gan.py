"""Area 6 — GAN augmentation on Financial PhraseBank (50%-agree file, the same
deduplicated 80/20 split and seed as area 2).

The engine's conditional GAN (``aigc_core.models.gan.train_gan``) learns the
frozen MiniLM embeddings of the training sentences per class;
``synthesize_for_rare_classes`` then lifts the smaller classes to the size of the
largest (neutral on the full data). The classifier is the sentiment app's head (the engine's
``EncoderClassifier`` in head mode: MLP head over frozen features, class
weights, the one Trainer, early stopping on the validation rows of the app's
``news_splits``) trained on the real training features with and without the synthetic
rows; a tuned logistic regression is run the same two ways. Figures: macro-F1
and negative-class F1 on the test side, the discriminator's held-out accuracy
(0.5 = cannot tell) and the Fréchet distance real vs generated (with the
real-vs-real distance at the same sample size as its floor).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from bench import baselines, datasets
from bench.harness import Stopwatch, median, setup_django, table

SEED = 42
LABELS = ["negative", "neutral", "positive"]


def train_head(features: np.ndarray, labels: list[str], val_features: np.ndarray, val_labels: list[str],
               seed: int, class_weights: bool = True):
    """The app's head (engine EncoderClassifier, mode='head', its defaults) trained on given features."""
    from aigc_core.models.classifier import (
        ClassifierConfig,
        EncoderClassifier,
        encode_labels,
        multihead_loss,
    )
    from aigc_core.models.classifier import class_weights as cw
    from aigc_core.training import TrainConfig, Trainer, set_seed

    heads = {"sentiment": LABELS}
    config = ClassifierConfig(heads=heads, mode="head", class_weights=class_weights)
    y = encode_labels({"sentiment": labels}, heads, len(labels))
    vy = encode_labels({"sentiment": val_labels}, heads, len(val_labels))
    weights = cw(y, heads, config.max_class_weight) if class_weights else None
    set_seed(seed)
    model = EncoderClassifier(config)

    def loader(x, yy, shuffle):
        ds = torch.utils.data.TensorDataset(torch.from_numpy(np.ascontiguousarray(x, np.float32)), yy)
        return torch.utils.data.DataLoader(ds, batch_size=32, shuffle=shuffle, generator=torch.Generator().manual_seed(seed),
                                           collate_fn=lambda rows: {"features": torch.stack([r[0] for r in rows]),
                                                                    "labels": torch.stack([r[1] for r in rows])})

    def eval_fn(m, val_loader):
        total, count = 0.0, 0
        for b in val_loader:
            total += float(multihead_loss(m(features=b["features"]), b["labels"], weights)) * len(b["labels"])
            count += len(b["labels"])
        return {"val_loss": total / max(1, count)}

    tc = TrainConfig(epochs=8, batch_size=32, lr=2e-3, seed=seed, patience=3, progress_bar=False)  # the app's settings
    trainer = Trainer(model, tc, loss_fn=lambda m, b: multihead_loss(m(features=b["features"]), b["labels"], weights),
                      eval_fn=eval_fn)
    trainer.fit(loader(features, y, True), loader(val_features, vy, False))
    model.eval()
    return model


def head_predict(model, features: np.ndarray) -> list[str]:
    with torch.no_grad():
        logits = model(features=torch.from_numpy(np.ascontiguousarray(features, np.float32)))["sentiment"]
    return [LABELS[i] for i in logits.argmax(-1).tolist()]


def scores(y_true: list[str], y_pred: list[str]) -> dict:
    from aigc_core.training import metrics as M

    rep = M.per_class_report(y_true, y_pred, LABELS)
    return {"accuracy": float(M.accuracy(y_true, y_pred)), "macro_f1": float(M.macro_f1(y_true, y_pred, labels=LABELS)),
            "negative_f1": float(rep["negative"]["f1"]), "positive_f1": float(rep["positive"]["f1"])}


def run(quick: bool) -> dict:
    setup_django()
    from aigc_core.models.classifier import frozen_features
    from aigc_core.models.gan import GANConfig, frechet_distance, train_gan
    from apps.sentiment.training import news_splits

    sw = Stopwatch()
    pb = datasets.phrasebank("50")
    d = pb.data
    tr, te = datasets.stratified_split(d.labels, 0.2, SEED)
    with sw("features"):
        feats = frozen_features(d.texts)  # the engine's scaled frozen features (head inputs)
    scale = math.sqrt(feats.shape[1])
    tr_texts = [d.texts[i] for i in tr]
    parts = news_splits(tr_texts)
    fit_rel, val_rel = sorted(parts.train + parts.calibration), parts.validation  # no threshold here
    fit_idx, val_idx = [tr[i] for i in fit_rel], [tr[i] for i in val_rel]
    y_fit = [d.labels[i] for i in fit_idx]
    y_val = [d.labels[i] for i in val_idx]
    y_te = [d.labels[i] for i in te]
    x_fit, x_val, x_te = feats[fit_idx], feats[val_idx], feats[te]
    counts = {lb: y_fit.count(lb) for lb in LABELS}
    target = max(counts.values())

    seeds = [1234] if quick else [1234, 1235, 1236, 1237, 1238]  # the claim reports its spread over >= 5
    runs = []
    for seed in tqdm(seeds, desc="GAN seeds", unit="seed"):
        with sw("gan_train"):
            gan, gm = train_gan(x_fit / scale, y_fit, GANConfig(seed=seed, progress_bar=False))
        synth, synth_labels = gan.synthesize_for_rare_classes(y_fit, target, seed=seed)
        x_aug = np.concatenate([x_fit, synth * scale])
        y_aug = y_fit + synth_labels
        with sw("classifiers"):
            r = {"gan": {k: gm.get(k) for k in ("discriminator_accuracy", "frechet_distance", "frechet_per_class",
                                                "wall_s", "steps", "d_loss", "g_loss", "held_out")},
                 "synthetic": {lb: synth_labels.count(lb) for lb in LABELS}}
            r["head"] = scores(y_te, head_predict(train_head(x_fit, y_fit, x_val, y_val, seed), x_te))
            r["head_gan"] = scores(y_te, head_predict(train_head(x_aug, y_aug, x_val, y_val, seed), x_te))
            r["head_no_weights"] = scores(y_te, head_predict(
                train_head(x_fit, y_fit, x_val, y_val, seed, class_weights=False), x_te))
            r["head_no_weights_gan"] = scores(y_te, head_predict(
                train_head(x_aug, y_aug, x_val, y_val, seed, class_weights=False), x_te))
            lr, c, _ = baselines.fit_lr(np.concatenate([x_fit, x_val]), y_fit + y_val, baselines.C_GRID_FROZEN,
                                        tune=not quick)
            r["lr"] = {**scores(y_te, lr.predict(x_te).tolist()), "C": c}
            lr2, _, _ = baselines.fit_lr(np.concatenate([x_aug, x_val]), y_aug + y_val, [c], tune=False)
            r["lr_gan"] = scores(y_te, lr2.predict(x_te).tolist())
        runs.append(r)

    # Real-vs-real Fréchet floor: two disjoint random halves of the real training embeddings,
    # each the size of the GAN's held-out set.
    rng = np.random.default_rng(0)
    n_held = int(runs[0]["gan"]["held_out"] or 0) or len(fit_idx) // 5
    perm = rng.permutation(len(fit_idx))
    fd_floor = frechet_distance(x_fit[perm[:n_held]] / scale, x_fit[perm[n_held:2 * n_held]] / scale)

    def med(key, metric):
        return median([r[key][metric] for r in runs])

    rows = []
    names = [("head", "ours: app head (class weights), real only"),
             ("head_gan", "ours: app head (class weights) + GAN synthetic"),
             ("head_no_weights", "app head without class weights, real only"),
             ("head_no_weights_gan", "app head without class weights + GAN synthetic"),
             ("lr", "baseline: frozen MiniLM + LR (tuned C), real only"),
             ("lr_gan", "baseline: frozen MiniLM + LR + GAN synthetic")]
    for key, title in names:
        rows.append([title, med(key, "accuracy"), med(key, "macro_f1"), med(key, "negative_f1"), med(key, "positive_f1")])
    d_acc = median([r["gan"]["discriminator_accuracy"] for r in runs])
    fd = median([r["gan"]["frechet_distance"] for r in runs])
    delta_macro = med("head_gan", "macro_f1") - med("head", "macro_f1")
    delta_neg = med("head_gan", "negative_f1") - med("head", "negative_f1")
    deltas = [r["head_gan"]["macro_f1"] - r["head"]["macro_f1"] for r in runs]
    spread = {"per_seed": [round(x, 4) for x in deltas], "min": min(deltas), "max": max(deltas),
              "std": float(np.std(deltas))}
    # A claim needs the median beyond noise and the seeds agreeing in sign.
    if delta_macro > 0.005 and min(deltas) > 0:
        verdict = "helps"
    elif delta_macro < -0.005 and max(deltas) < 0:
        verdict = "does not help"
    else:
        verdict = "makes no clear difference"
    return {
        "summary": f"Conditional GAN in MiniLM embedding space; for the app's classifier augmentation {verdict} "
                   f"(macro-F1 {delta_macro:+.3f}, per-seed range {spread['min']:+.3f} to {spread['max']:+.3f}; negative F1 "
                   f"{delta_neg:+.3f}; median of {len(seeds)} seed(s)).",
        "data": {"file": pb.file, "hash": pb.data_hash, "fit": len(fit_idx), "val": len(val_idx), "test": len(te),
                 "fit_counts": counts, "synthetic_per_class": runs[0]["synthetic"]},
        "runs": runs,
        "macro_f1_delta_spread": spread,
        "gan_summary": {"discriminator_accuracy_median": d_acc, "frechet_distance_median": fd,
                        "frechet_real_vs_real_floor": fd_floor},
        "wall_times": sw.times,
        "tables": [table(
            f"PhraseBank (50% agree) test side ({len(te):,} sentences): with and without GAN synthetic minority examples",
            ["classifier", "accuracy", "macro-F1", "negative F1", "positive F1"], rows,
            [f"GAN: {runs[0]['gan']['steps']} steps; discriminator accuracy on held-out real vs fresh fake embeddings "
             f"{d_acc:.3f} (0.5 = cannot tell them apart); Fréchet distance real vs generated {fd:.4f}, against "
             f"{fd_floor:.4f} between two halves of the real embeddings of the same size (the floor).",
             f"Synthetic rows added: {runs[0]['synthetic']} (to {target} per class, the size of the largest class).",
             f"Median over {len(seeds)} seed(s) (GAN and classifier seeded together); same split and seed as area 2. "
             f"Macro-F1 change from augmentation per seed: {', '.join(f'{x:+.3f}' for x in deltas)} "
             f"(std {spread['std']:.3f}).",
             f"Verdict: augmentation {verdict} here; the app keeps it off by default."],
        )],
        "published": ["No published figure for this set-up; the comparison is with and without, same split and seed."],
        "below_published": [],
    }
