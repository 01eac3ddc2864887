"""The seed's generator/discriminator min-max game, used where it can be measured:
a conditional GAN in the sentence encoder's 384-d embedding space that
synthesises embeddings of rare classes to rebalance classifier training.

    D maximises  log D(x, y) + log(1 - D(G(z, y), y))
    G minimises  -log D(G(z, y), y)        (the non-saturating loss of Goodfellow et al.:
                                            strong gradients while D still wins easily)

Honest measures come with every run: the discriminator's accuracy on held-out
real embeddings against fresh fakes (0.5 means it cannot tell them apart) and
the Fréchet distance between real and generated embeddings, overall and per
class. Whether the synthetic examples help a classifier is for the benchmark to
show; nothing here turns augmentation on by default.

Alternating G/D steps do not fit the one Trainer's single loss, so this file
keeps its own short loop but reuses the engine's device, autocast, seeding and
progress reporting.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from scipy import linalg
from torch import nn

from aigc_core.device import DeviceInfo, autocast, get_device
from aigc_core.training import set_seed

WEIGHTS_FILE = "gan.safetensors"
CONFIG_FILE = "config.json"


@dataclass
class GANConfig:
    labels: list[str] = field(default_factory=list)  # class names; filled from the data when empty
    dim: int = 384  # embedding width: the shipped MiniLM encoder's
    noise_dim: int = 64  # z ~ N(0, I); plenty for a few hundred examples per class
    label_dim: int = 16  # learned class embedding fed to both networks
    hidden: int = 256  # width of the two hidden layers of G and of D
    steps: int = 4000  # alternating D/G updates; on PhraseBank embeddings 4000 beat 2000 on every class's FD
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5  # DCGAN's Adam beta1: less momentum keeps the min-max from oscillating
    d_steps: int = 1  # discriminator updates per generator update
    label_smoothing: float = 0.1  # one-sided: real targets are 0.9, which keeps D from overconfidence
    class_mean_init: bool = True  # start G's per-class centre at the real class mean (see Generator)
    spectral_norm: bool = False  # Lipschitz-bound D's layers (Miyato et al. 2018) so it cannot overpower G
    normalize: bool = True  # project G's output onto the unit sphere, where the encoder's vectors live
    holdout: float = 0.2  # share of each class's real embeddings kept out for the reported metrics
    seed: int = 1234
    amp: bool = False  # networks this small gain nothing from autocast; bf16 only when on
    cpu_threads: int | None = 1  # tiny matmuls: OpenMP sync costs more than extra threads gain; None: engine default
    progress_bar: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GANConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Generator(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        self.normalize = config.normalize
        self.label_embed = nn.Embedding(len(config.labels), config.label_dim)
        self.net = nn.Sequential(
            nn.Linear(config.noise_dim + config.label_dim, config.hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(config.hidden, config.hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(config.hidden, config.dim),
        )
        # A learned per-class centre that train_gan starts at the real class means
        # (when class_mean_init): G then learns the spread around it instead of first
        # having to find where each class lives, which it does poorly in 384 dimensions.
        self.class_offset = nn.Parameter(torch.zeros(len(config.labels), config.dim))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # z: (B, noise_dim), y: (B,) class ids -> fake embeddings (B, dim)
        x = self.class_offset[y] + self.net(torch.cat([z, self.label_embed(y)], dim=1))
        return F.normalize(x, dim=1) if self.normalize else x


class Discriminator(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        self.label_embed = nn.Embedding(len(config.labels), config.label_dim)
        sn = nn.utils.parametrizations.spectral_norm if config.spectral_norm else (lambda layer: layer)
        self.net = nn.Sequential(
            sn(nn.Linear(config.dim + config.label_dim, config.hidden)),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.2),
            sn(nn.Linear(config.hidden, config.hidden)),
            nn.LeakyReLU(0.2),
            sn(nn.Linear(config.hidden, 1)),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # x: (B, dim), y: (B,) -> logit that x is a real example of class y, (B,)
        return self.net(torch.cat([x, self.label_embed(y)], dim=1)).squeeze(1)


class ConditionalGAN(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        if not config.labels:
            raise ValueError("GANConfig.labels is empty: the conditional GAN needs the class names")
        self.config = config
        self.label_index = {label: i for i, label in enumerate(config.labels)}
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)

    def _class_ids(self, labels: Sequence[str]) -> torch.Tensor:
        unknown = sorted({lb for lb in labels if lb not in self.label_index})
        if unknown:
            raise KeyError(f"labels {unknown} are not among the GAN's classes {self.config.labels}")
        return torch.tensor([self.label_index[lb] for lb in labels], dtype=torch.long)

    @torch.no_grad()
    def sample(self, label: str, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` synthetic embeddings of class ``label``: float32 array (n, dim)."""
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.noise_dim, generator=gen).to(device)
        y = self._class_ids([label] * n).to(device)
        self.generator.eval()
        return self.generator(z, y).float().cpu().numpy()

    def synthesize_for_rare_classes(
        self, labels: Sequence[str], target_per_class: int, seed: int | None = None
    ) -> tuple[np.ndarray, list[str]]:
        """Synthetic (embeddings, labels) that lift every class in ``labels`` to ``target_per_class``.

        Only the synthetic rows come back; the caller concatenates them with the real ones.
        """
        counts = {lb: 0 for lb in self.config.labels}
        for lb in labels:
            counts[lb] = counts.get(lb, 0) + 1
        vecs, out_labels = [], []
        for i, (lb, c) in enumerate(sorted(counts.items())):
            need = target_per_class - c
            if need > 0 and lb in self.label_index:
                vecs.append(self.sample(lb, need, seed=None if seed is None else seed + i))
                out_labels += [lb] * need
        if not vecs:
            return np.zeros((0, self.config.dim), dtype=np.float32), []
        return np.concatenate(vecs), out_labels

    @torch.no_grad()
    def discriminator_accuracy(self, real: np.ndarray, labels: Sequence[str], seed: int = 0) -> float:
        """Share of held-out real and fresh fake embeddings (same labels) D classifies correctly."""
        device = next(self.parameters()).device
        self.eval()
        y = self._class_ids(labels).to(device)
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(len(labels), self.config.noise_dim, generator=gen).to(device)
        real_t = torch.as_tensor(np.asarray(real, dtype=np.float32), device=device)
        real_ok = (self.discriminator(real_t, y) > 0).float()
        fake_ok = (self.discriminator(self.generator(z, y), y) <= 0).float()
        return float(torch.cat([real_ok, fake_ok]).mean())

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                  str(directory / WEIGHTS_FILE))
        (directory / CONFIG_FILE).write_text(json.dumps({"kind": "conditional_gan", **asdict(self.config)}, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> ConditionalGAN:
        directory = Path(directory)
        if not (directory / CONFIG_FILE).exists():
            raise FileNotFoundError(f"{directory} has no {CONFIG_FILE}: not a saved conditional GAN")
        model = cls(GANConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text())))
        model.load_state_dict(load_file(str(directory / WEIGHTS_FILE), device=str(map_location)))
        return model.eval()


def frechet_distance(real: np.ndarray, fake: np.ndarray, eps: float = 1e-6) -> float:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2) between Gaussian fits of two sets (N, D).

    With fewer samples than dimensions the covariances are singular; as in pytorch-fid,
    a small eps on the diagonal keeps the matrix square root finite.
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need two (N, D) arrays with the same D, got {real.shape} and {fake.shape}")
    if len(real) < 2 or len(fake) < 2:
        raise ValueError("the Fréchet distance needs at least two samples on each side")
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(fake, rowvar=False))
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)  # numerical noise can leave tiny imaginary parts
    diff = mu1 - mu2
    return float(max(0.0, diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)))


def _holdout_split(labels: Sequence[str], share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class split; a class with fewer than 4 examples keeps them all for training."""
    rng = np.random.default_rng(seed)
    train_idx, held_idx = [], []
    labels_arr = np.asarray(labels)
    for lb in sorted(set(labels)):
        idx = rng.permutation(np.flatnonzero(labels_arr == lb))
        n_held = int(len(idx) * share) if len(idx) >= 4 else 0
        held_idx.extend(idx[:n_held])
        train_idx.extend(idx[n_held:])
    return np.sort(np.asarray(train_idx, dtype=int)), np.sort(np.asarray(held_idx, dtype=int))


def train_gan(
    embeddings: np.ndarray,
    labels: Sequence[str],
    config: GANConfig | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    device: DeviceInfo | None = None,
) -> tuple[ConditionalGAN, dict[str, Any]]:
    """Train the conditional GAN; returns (gan, metrics).

    Real batches are drawn class-balanced (a uniform class, then one of its examples),
    so the rare classes the GAN exists for get as many updates as the common ones.
    Metrics: final and per-interval losses, held-out discriminator accuracy and
    Fréchet distances (overall and per class with at least 2 held-out examples).
    """
    config = config or GANConfig()
    embeddings = np.asarray(embeddings, dtype=np.float32)
    labels = [str(lb) for lb in labels]
    if embeddings.ndim != 2 or len(embeddings) != len(labels):
        raise ValueError(f"need embeddings (N, D) and N labels, got {embeddings.shape} and {len(labels)}")
    if not config.labels:
        config.labels = sorted(set(labels))
    config.dim = int(embeddings.shape[1])
    info = device or get_device()
    threads_before = torch.get_num_threads()
    if not info.is_cuda and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    try:
        return _train_gan(embeddings, labels, config, on_progress, info)
    finally:
        torch.set_num_threads(threads_before)


def _train_gan(
    embeddings: np.ndarray,
    labels: list[str],
    config: GANConfig,
    on_progress: Callable[[float, str], None] | None,
    info: DeviceInfo,
) -> tuple[ConditionalGAN, dict[str, Any]]:
    use_amp = config.amp and info.amp_dtype == torch.bfloat16
    set_seed(config.seed)

    gan = ConditionalGAN(config).to(info.device)
    y_all = gan._class_ids(labels)
    train_idx, held_idx = _holdout_split(labels, config.holdout, config.seed)
    x_train = torch.as_tensor(embeddings[train_idx], device=info.device)
    y_train = y_all[train_idx]
    # Training rows grouped by class: class c owns order[starts[c] : starts[c] + counts[c]].
    order = torch.argsort(y_train, stable=True)
    counts = torch.bincount(y_train, minlength=len(config.labels))
    starts = torch.cumsum(counts, 0) - counts
    present = torch.nonzero(counts).flatten()
    if len(present) == 0:
        raise ValueError("no training embeddings")

    if config.class_mean_init:
        with torch.no_grad():
            for c in present.tolist():
                rows = order[starts[c] : starts[c] + counts[c]].to(info.device)
                gan.generator.class_offset[c] = x_train[rows].mean(0)

    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=config.lr_g, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=config.lr_d, betas=(config.beta1, 0.999))
    gen = torch.Generator().manual_seed(config.seed)
    real_target = 1.0 - config.label_smoothing

    def real_batch() -> tuple[torch.Tensor, torch.Tensor]:
        classes = present[torch.randint(len(present), (config.batch_size,), generator=gen)]
        offsets = (torch.rand(config.batch_size, generator=gen) * counts[classes]).long()
        idx = order[starts[classes] + offsets].to(info.device)
        return x_train[idx], classes.to(info.device)

    history: list[dict[str, float]] = []
    report_every = max(1, config.steps // 20)
    started = time.perf_counter()
    steps = range(config.steps)
    bar = None
    if config.progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(steps, desc="gan", unit="step", leave=False)
        steps = bar
    d_sum = g_sum = 0.0
    gan.train()
    for step in steps:
        for _ in range(config.d_steps):
            x_real, y = real_batch()
            z = torch.randn(config.batch_size, config.noise_dim, generator=gen).to(info.device)
            with autocast(info, enabled=use_amp):
                fake = gan.generator(z, y).detach()
                d_real = gan.discriminator(x_real, y).float()
                d_fake = gan.discriminator(fake, y).float()
            d_loss = F.binary_cross_entropy_with_logits(
                d_real, torch.full_like(d_real, real_target)
            ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()

        y = present[torch.randint(len(present), (config.batch_size,), generator=gen)].to(info.device)
        z = torch.randn(config.batch_size, config.noise_dim, generator=gen).to(info.device)
        with autocast(info, enabled=use_amp):
            d_on_fake = gan.discriminator(gan.generator(z, y), y).float()
        # Non-saturating: maximise log D(G(z)) instead of minimising log(1 - D(G(z))).
        g_loss = F.binary_cross_entropy_with_logits(d_on_fake, torch.ones_like(d_on_fake))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()

        if not (torch.isfinite(d_loss) and torch.isfinite(g_loss)):
            raise RuntimeError(f"GAN losses diverged at step {step + 1}: lower lr_g / lr_d")
        d_sum += float(d_loss.detach())
        g_sum += float(g_loss.detach())
        if (step + 1) % report_every == 0 or step + 1 == config.steps:
            n = (step % report_every) + 1
            history.append({"step": step + 1, "d_loss": d_sum / n, "g_loss": g_sum / n})
            d_sum = g_sum = 0.0
            if bar is not None:
                bar.set_postfix(d_loss=f"{history[-1]['d_loss']:.3f}", g_loss=f"{history[-1]['g_loss']:.3f}")
            if on_progress is not None:
                on_progress(
                    100.0 * (step + 1) / config.steps,
                    f"gan step {step + 1}/{config.steps} d_loss={history[-1]['d_loss']:.3f} "
                    f"g_loss={history[-1]['g_loss']:.3f}",
                )
    if bar is not None:
        bar.close()
    gan.eval()

    metrics: dict[str, Any] = {
        "steps": config.steps,
        "wall_s": time.perf_counter() - started,
        "d_loss": history[-1]["d_loss"] if history else None,
        "g_loss": history[-1]["g_loss"] if history else None,
        "history": history,
        "held_out": len(held_idx),
    }
    # Held-out real embeddings when there are any, else the training ones (said so in the metrics).
    eval_idx = held_idx if len(held_idx) >= 2 else train_idx
    metrics["evaluated_on"] = "held_out" if len(held_idx) >= 2 else "train"
    eval_labels = [labels[i] for i in eval_idx]
    metrics["discriminator_accuracy"] = gan.discriminator_accuracy(embeddings[eval_idx], eval_labels, config.seed)
    fakes = {lb: gan.sample(lb, max(2, eval_labels.count(lb)), seed=config.seed + i)
             for i, lb in enumerate(config.labels)}
    all_fake = np.concatenate([fakes[lb][: eval_labels.count(lb)] for lb in config.labels if eval_labels.count(lb)])
    if len(eval_idx) >= 2 and len(all_fake) >= 2:
        metrics["frechet_distance"] = frechet_distance(embeddings[eval_idx], all_fake)
        # What a perfect generator would score at this sample size: held-out real against as
        # many *training* real embeddings of the same classes. FD is biased upwards with few
        # samples in 384 dimensions, so read frechet_distance against this, not against 0.
        if metrics["evaluated_on"] == "held_out":
            rng = np.random.default_rng(config.seed)
            ref_idx = []
            for lb in config.labels:
                pool = [i for i in train_idx if labels[i] == lb]
                k = min(len(pool), eval_labels.count(lb))
                ref_idx.extend(rng.choice(pool, size=k, replace=False).tolist() if k else [])
            if len(ref_idx) >= 2:
                metrics["frechet_reference"] = frechet_distance(embeddings[eval_idx], embeddings[ref_idx])
    per_class = {}
    for lb in config.labels:
        real_lb = embeddings[[i for i in eval_idx if labels[i] == lb]]
        if len(real_lb) >= 2:
            per_class[lb] = frechet_distance(real_lb, fakes[lb])
    metrics["frechet_per_class"] = per_class
    return gan, metrics
