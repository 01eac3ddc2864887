"""The engine's five steps from a shell, without Django:

    python -m aigc_core prep  data.csv --text-col text --label-cols topic --out var/data/tickets
    python -m aigc_core train classifier --data var/data/tickets --name tickets
    python -m aigc_core eval  --name tickets                       # on the prep's test split
    python -m aigc_core train transformer --data corpus.jsonl --name replies
    python -m aigc_core generate --name replies --prompt "Thanks for" --top-p 0.9 --stream

(The model is built by ``train``.) Artifacts go to a versioned registry under
--artifacts-dir ($AIGC_ARTIFACTS_DIR, else var/artifacts). Bad input ends with a
non-zero status and one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from aigc_core.config import PrepConfig, artifacts_dir

CLASSIFIERS = ("classifier", "bigru")
LANGUAGE_MODELS = ("ngram", "gru", "transformer")


class CLIError(Exception):
    """A problem the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line keeps scripts' logs readable.
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _csv_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _out(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, indent=2, default=str))


# -- data ------------------------------------------------------------------
def _records(path: Path, text_col: str = "text", label_cols: Sequence[str] = ()):
    from aigc_core.data import load_csv, load_jsonl

    if not path.exists():
        raise CLIError(f"{path}: no such file or directory")
    if path.suffix.lower() == ".csv":
        return load_csv(path, text_col=text_col, label_cols=label_cols)
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        return load_jsonl(path, text_key=text_col, label_keys=list(label_cols) or None)
    raise CLIError(f"{path}: expected a .csv or .jsonl file")


def _train_val(data: Path, args) -> tuple[list, list | None]:
    """A prep directory (train.jsonl + val.jsonl) or a single data file."""
    if data.is_dir():
        train_file = data / "train.jsonl"
        if not train_file.exists():
            raise CLIError(f"{data} has no train.jsonl: run `prep` first or pass a data file")
        val_file = data / "val.jsonl"
        val = _records(val_file) if val_file.exists() else None
        return _records(train_file), val or None
    return _records(data, args.text_col, _csv_list(args.label_cols)), None


def cmd_prep(args) -> int:
    from aigc_core.data import dataset_hash, save_jsonl, stratified_split, time_split
    from aigc_core.data.loaders import load_csv, load_jsonl

    cfg = PrepConfig(split=args.split, val_ratio=args.val_ratio, test_ratio=args.test_ratio, seed=args.seed,
                     max_chars=args.max_chars)
    src = Path(args.input)
    if not src.exists():
        raise CLIError(f"{src}: no such file")
    labels = _csv_list(args.label_cols)
    if src.suffix.lower() == ".csv":
        recs = load_csv(src, text_col=args.text_col, label_cols=labels, id_col=args.id_col,
                        time_col=args.time_col, max_chars=cfg.max_chars)
    elif src.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        recs = load_jsonl(src, text_key=args.text_col, label_keys=labels or None, id_key=args.id_col or "id",
                          time_key=args.time_col or "timestamp", max_chars=cfg.max_chars)
    else:
        raise CLIError(f"{src}: expected a .csv or .jsonl file")
    if not recs:
        raise CLIError(f"{src}: no rows with text")
    if cfg.split == "time":
        if not args.time_col:
            raise CLIError("--split time needs --time-col")
        parts = time_split(recs, cfg.val_ratio, cfg.test_ratio)
    else:
        parts = stratified_split(recs, labels[0] if labels else None, cfg.val_ratio, cfg.test_ratio, cfg.seed)
    out = Path(args.out)
    summary: dict[str, Any] = {"source": str(src), "rows": len(recs), "split": cfg.split,
                               "label_cols": labels, "data_hash": dataset_hash(recs)}
    for part_name, part in zip(("train", "val", "test"), parts, strict=True):
        save_jsonl(part, out / f"{part_name}.jsonl")
        summary[part_name] = {"rows": len(part), "data_hash": dataset_hash(part)}
    (out / "prep.json").write_text(json.dumps(summary, indent=2))
    _out({**summary, "out": str(out)})
    return 0


# -- train -----------------------------------------------------------------
def _train_config(args):
    from aigc_core.training import TrainConfig

    kw: dict[str, Any] = {"seed": args.seed, "progress_bar": not args.no_progress, "patience": args.patience}
    for name in ("epochs", "batch_size", "lr", "max_steps"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    return TrainConfig(**kw)


def _label_lists(records, heads: Sequence[str]) -> dict[str, list[str | None]]:
    return {h: [r.labels.get(h) for r in records] for h in heads}


def cmd_train(args) -> int:
    from aigc_core.data import dataset_hash
    from aigc_core.registry import Registry

    train, val = _train_val(Path(args.data), args)
    if not train:
        raise CLIError(f"{args.data}: no training rows")
    tc = _train_config(args)
    texts = [r.text for r in train]
    val_texts = [r.text for r in val] if val else None
    config: dict[str, Any] = {"kind": args.kind, "data": str(Path(args.data).resolve()), "train": {k: str(v) if isinstance(v, Path) else v
                                                           for k, v in vars(tc).items()}}

    if args.kind in CLASSIFIERS:
        from dataclasses import asdict

        from aigc_core.models.classifier import (
            BiGRUConfig,
            ClassifierConfig,
            train_bigru_classifier,
            train_classifier,
        )

        heads = _csv_list(args.heads) or sorted({h for r in train for h, v in r.labels.items() if v is not None})
        if not heads:
            raise CLIError("the training rows carry no labels: pass --label-cols to prep or --heads")
        labels = _label_lists(train, heads)
        val_labels = _label_lists(val, heads) if val else None
        if args.kind == "classifier":
            cache = Path(args.artifacts_dir) / ".feature-cache"
            ccfg = ClassifierConfig(heads={h: [] for h in heads}, mode=args.mode, feature_cache_dir=str(cache))
            model, metrics = train_classifier(texts, labels, ccfg, tc, val_texts, val_labels)
        else:
            model, metrics = train_bigru_classifier(texts, labels, BiGRUConfig(heads={h: [] for h in heads}), tc,
                                                    val_texts, val_labels)
        config["model"] = asdict(model.config)
        writer = model.save
    elif args.kind == "ngram":
        try:
            from aigc_core.models.ngram import NgramConfig, NgramLanguageModel
        except ImportError as exc:
            raise CLIError(f"the n-gram model is not available in this checkout ({exc})") from None
        from aigc_core.data import train_tokenizer
        from aigc_core.models.language_model import LanguageModelConfig

        # The same subword tokens as gru/transformer (same default vocabulary), so the
        # baseline's perplexity compares with theirs token for token.
        tokenizer = train_tokenizer(texts, vocab_size=LanguageModelConfig.vocab_size)
        lm = NgramLanguageModel(NgramConfig(order=args.order), tokenizer=tokenizer).fit(texts)
        metrics = {"vocab_size": lm.vocab_size}
        if val_texts:
            metrics["val_perplexity"] = lm.perplexity(val_texts)
        config["model"] = {"order": args.order}
        writer = lm.save
    else:
        try:
            from aigc_core.models.language_model import LanguageModelConfig, train_language_model
        except ImportError as exc:
            raise CLIError(f"neural language models are not available in this checkout ({exc})") from None
        lcfg = LanguageModelConfig(family=args.kind)
        model, metrics = train_language_model(texts, None, lcfg, tc, val_texts)
        metrics = {k: v for k, v in metrics.items() if k != "history"}
        from dataclasses import asdict

        config["model"] = asdict(model.config)
        writer = model.save

    reg = Registry(args.artifacts_dir)
    version = reg.save(args.name, writer, metrics=metrics, data_hash=dataset_hash(train), config=config,
                       promote=not args.no_promote)
    _out({"name": version.name, "version": version.version, "path": str(version.path),
          "promoted": not args.no_promote, "metrics": metrics})
    return 0


# -- load / eval / generate ------------------------------------------------
def _load(args, need: str | None = None) -> tuple[str, Any, Any]:
    """(kind, model, ModelVersion) of the current or named version; falls back past a corrupt one.

    ``need``: "language_model" to refuse a classifier before paying for its load."""
    from aigc_core.registry import Registry

    reg = Registry(args.artifacts_dir)
    if args.version is not None:
        path, mv, warning = reg.load_path(args.name, args.version), reg.get(args.name, args.version), None
    else:
        path, mv, warning = reg.load_path_with_fallback(args.name)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if (path / "ngram.json").exists():
        from aigc_core.models.ngram import NgramLanguageModel

        return "ngram", NgramLanguageModel.load(path), mv
    kind = json.loads((path / "config.json").read_text()).get("kind") if (path / "config.json").exists() else None
    if need == "language_model" and kind != "language_model":
        raise CLIError(f"{mv.name} {mv.tag} is not a language model (kind: {kind}); generate needs "
                       "ngram, gru or transformer")
    if kind in {"encoder_classifier", "bigru_classifier"}:
        from aigc_core.models.classifier import load_classifier

        return "classifier", load_classifier(path), mv
    if kind == "language_model":
        from aigc_core.models.language_model import load_language_model

        return "language_model", load_language_model(path), mv
    raise CLIError(f"{args.name} {mv.tag}: unknown artifact kind {kind!r}")


def _eval_records(args, mv) -> list:
    """--data, else the prep directory the version was trained on (its test, else val split)."""
    stored = mv.config.get("data")
    data_arg = args.data or (stored if stored and Path(stored).is_dir() else None)
    if data_arg:
        data = Path(data_arg)
        if data.is_dir():
            for part in ("test", "val"):
                f = data / f"{part}.jsonl"
                if f.exists() and f.stat().st_size:
                    return _records(f)
            raise CLIError(f"{data} has no non-empty test.jsonl or val.jsonl")
        return _records(data, args.text_col, _csv_list(args.label_cols))
    return []


def cmd_eval(args) -> int:
    kind, model, mv = _load(args)
    recs = _eval_records(args, mv)
    result: dict[str, Any] = {"name": mv.name, "version": mv.version, "stored_metrics": mv.metrics}
    if recs:
        texts = [r.text for r in recs]
        if kind == "classifier":
            from aigc_core.models.classifier import encode_labels, evaluate_logits

            heads = model.config.heads
            labels = {h: [r.labels.get(h) for r in recs] for h in heads}
            proba = model.predict_proba(texts)
            y = encode_labels(labels, heads, len(texts)).numpy()
            result["metrics"] = evaluate_logits(proba, y, heads, detailed=True)
        elif kind == "ngram":
            result["metrics"] = {"perplexity": model.perplexity(texts)}
        else:
            from torch.utils.data import DataLoader

            from aigc_core.generation import as_codec
            from aigc_core.models.language_model import evaluate_language_model, lm_blocks, token_stream

            pairs = lm_blocks(token_stream(texts, as_codec(model.tokenizer), model.config.eos_token_id),
                              model.config.block_size)
            result["metrics"] = evaluate_language_model(model, DataLoader(pairs, batch_size=32))
        result["rows"] = len(recs)
    _out(result)
    return 0


def cmd_generate(args) -> int:
    kind, model, mv = _load(args, need="language_model")
    try:
        from aigc_core.generation import GenerationConfig, NgramAdapter, stream
    except ImportError as exc:
        raise CLIError(f"aigc_core.generation is not available in this checkout ({exc})") from None
    gen = NgramAdapter(model) if kind == "ngram" else model
    cfg = GenerationConfig(max_new_tokens=args.max_tokens, greedy=args.greedy, temperature=args.temperature,
                           top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                           stop=tuple(args.stop or ()), seed=args.seed)
    if args.stream:
        for piece in stream(gen, args.prompt, cfg):
            print(piece, end="", flush=True)
        print()
    else:
        print("".join(stream(gen, args.prompt, cfg)))
    return 0


# -- wiring ----------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m aigc_core", description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts-dir", default=str(artifacts_dir()),
                        help="model registry root (default: $AIGC_ARTIFACTS_DIR or var/artifacts)")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_cols(p, default_text="text"):
        p.add_argument("--text-col", default=default_text, help="text column / key (default: text)")
        p.add_argument("--label-cols", default="", help="comma-separated label columns / keys")

    p = sub.add_parser("prep", help="CSV/JSONL -> cleaned train/val/test JSONL + content hashes")
    p.add_argument("input")
    data_cols(p)
    p.add_argument("--id-col")
    p.add_argument("--time-col")
    p.add_argument("--split", choices=("stratified", "time"), default=PrepConfig.split)
    p.add_argument("--val-ratio", type=float, default=PrepConfig.val_ratio)
    p.add_argument("--test-ratio", type=float, default=PrepConfig.test_ratio)
    p.add_argument("--max-chars", type=int, default=PrepConfig.max_chars)
    p.add_argument("--seed", type=int, default=PrepConfig.seed)
    p.add_argument("--out", required=True, help="directory for train.jsonl, val.jsonl, test.jsonl, prep.json")
    p.set_defaults(func=cmd_prep)

    p = sub.add_parser("train", help="train a model and save it as a new registry version")
    p.add_argument("kind", choices=CLASSIFIERS + LANGUAGE_MODELS)
    p.add_argument("--data", required=True, help="a prep directory or a .csv/.jsonl file")
    p.add_argument("--name", required=True, help="artifact name in the registry")
    data_cols(p)
    p.add_argument("--heads", help="classifier heads (label columns); default: every label in the data")
    p.add_argument("--mode", choices=("head", "top", "full"), default="head", help="encoder classifier mode")
    p.add_argument("--order", type=int, default=3, help="n-gram order")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-promote", action="store_true", help="save the version without making it current")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="load an artifact and print its metrics (on --data when given)")
    p.add_argument("--name", required=True)
    p.add_argument("--version", type=int)
    p.add_argument("--data", help="a prep directory (test, else val split) or a .csv/.jsonl file")
    data_cols(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("generate", help="continue a prompt with a language model")
    p.add_argument("--name", required=True)
    p.add_argument("--version", type=int)
    p.add_argument("--prompt", default="")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--stop", action="append", help="stop string (repeatable)")
    p.add_argument("--seed", type=int)
    p.add_argument("--stream", action="store_true", help="print tokens as they are made")
    p.set_defaults(func=cmd_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our tqdm bars show the work; transformers' weight-loading bar is only noise on stderr.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from aigc_core.data import DataError
    from aigc_core.registry import RegistryError

    try:
        return args.func(args)
    except (CLIError, DataError, RegistryError, ValueError, FileNotFoundError, KeyError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
