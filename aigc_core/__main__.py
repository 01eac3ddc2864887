"""The engine's five steps from a shell, without Django:

    python -m aigc_core prep  data.csv --text-col text --label-cols topic --out var/data/tickets
    python -m aigc_core train classifier --data var/data/tickets --name tickets
    python -m aigc_core eval  --name tickets                       # on the prep's test split

    # A public set with its own official test file: keep it whole as the test split.
    python -m aigc_core prep  train.csv --test-file test.csv --label-cols label --out var/data/intents
    python -m aigc_core eval  --name intents --data test.csv --label-cols label   # or any labelled file
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


class _Help(argparse.HelpFormatter):
    """Shows each option's default, except when there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, "", False) or action.default is argparse.SUPPRESS or "%(default)" in text:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line keeps scripts' logs readable.
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _csv_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _out(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, indent=2, default=str))


# -- data ------------------------------------------------------------------
def _records(path: Path, text_col: str = "text", label_cols: Sequence[str] = (), delimiter: str = ","):
    from aigc_core.data import load_csv, load_jsonl

    if not path.exists():
        raise CLIError(f"{path}: no such file or directory")
    if path.suffix.lower() in {".csv", ".tsv"}:
        return load_csv(path, text_col=text_col, label_cols=label_cols,
                        delimiter="\t" if path.suffix.lower() == ".tsv" and delimiter == "," else delimiter)
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
    return _records(data, args.text_col, _csv_list(args.label_cols), _delimiter(args)), None


def _delimiter(args) -> str:
    value = getattr(args, "delimiter", ",") or ","
    value = {"tab": "\t", "\\t": "\t"}.get(value, value)
    if len(value) != 1:
        raise CLIError(f"--delimiter must be one character (or 'tab'), not {value!r}")
    return value


def cmd_prep(args) -> int:
    from aigc_core.data import dataset_hash, save_jsonl, stratified_split, time_split
    from aigc_core.data.loaders import load_csv, load_jsonl

    cfg = PrepConfig(split=args.split, val_ratio=args.val_ratio, test_ratio=args.test_ratio, seed=args.seed,
                     max_chars=args.max_chars)
    labels = _csv_list(args.label_cols)

    def load(src: Path):
        if not src.exists():
            raise CLIError(f"{src}: no such file")
        if src.suffix.lower() in {".csv", ".tsv"}:
            delim = "\t" if src.suffix.lower() == ".tsv" and args.delimiter == "," else _delimiter(args)
            return load_csv(src, text_col=args.text_col, label_cols=labels, id_col=args.id_col,
                            time_col=args.time_col, max_chars=cfg.max_chars, delimiter=delim)
        if src.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
            return load_jsonl(src, text_key=args.text_col, label_keys=labels or None, id_key=args.id_col or "id",
                              time_key=args.time_col or "timestamp", max_chars=cfg.max_chars)
        raise CLIError(f"{src}: expected a .csv, .tsv or .jsonl file")

    src = Path(args.input)
    recs = load(src)
    if not recs:
        raise CLIError(f"{src}: no rows with text")
    given_test = load(Path(args.test_file)) if args.test_file else None
    given_val = load(Path(args.val_file)) if args.val_file else None
    # A given file replaces that split: its ratio becomes 0 for the split of the input.
    val_ratio = 0.0 if given_val is not None else cfg.val_ratio
    test_ratio = 0.0 if given_test is not None else cfg.test_ratio
    if cfg.split == "time":
        if not args.time_col:
            raise CLIError("--split time needs --time-col")
        parts = time_split(recs, val_ratio, test_ratio)
    else:
        parts = stratified_split(recs, labels[0] if labels else None, val_ratio, test_ratio, cfg.seed)
    parts = (parts[0], given_val if given_val is not None else parts[1],
             given_test if given_test is not None else parts[2])
    out = Path(args.out)
    summary: dict[str, Any] = {"source": str(src), "rows": len(recs), "split": cfg.split,
                               "label_cols": labels, "data_hash": dataset_hash(recs),
                               "test_file": args.test_file, "val_file": args.val_file}
    for part_name, part in zip(("train", "val", "test"), parts, strict=True):
        save_jsonl(part, out / f"{part_name}.jsonl")
        summary[part_name] = {"rows": len(part), "data_hash": dataset_hash(part)}
    (out / "prep.json").write_text(json.dumps(summary, indent=2))
    _out({**summary, "out": str(out)})
    return 0


# -- train -----------------------------------------------------------------
def _train_config(args, mode: str | None = None):
    """The recipe's defaults (``training.recipe``) for an encoder classifier; TrainConfig's
    for the other models. Flags given on the command line override either."""
    from aigc_core.training import TrainConfig
    from aigc_core.training.recipe import finetune_train_config

    kw: dict[str, Any] = {"seed": args.seed, "progress_bar": not args.no_progress}
    if args.patience is not None:
        kw["patience"] = args.patience
    for name in ("epochs", "batch_size", "lr", "max_steps"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    if mode is not None:
        return finetune_train_config(mode, **kw)
    return TrainConfig(**{"patience": 2, **kw})


def _label_lists(records, heads: Sequence[str]) -> dict[str, list[str | None]]:
    return {h: [r.labels.get(h) for r in records] for h in heads}


def cmd_train(args) -> int:
    from aigc_core.data import dataset_hash
    from aigc_core.registry import Registry

    train, val = _train_val(Path(args.data), args)
    if not train:
        raise CLIError(f"{args.data}: no training rows")
    mode = mode_reason = None
    if args.kind == "classifier":
        from aigc_core.training.recipe import choose_mode, rows_per_class

        heads_seen = {h for r in train for h, v in r.labels.items() if v is not None}
        # contrastive only when every head is few-shot (the best-labelled head decides)
        per_class = max((rows_per_class([r.labels.get(h) for r in train]) for h in heads_seen), default=None)
        mode, mode_reason = choose_mode(len(train), None if args.mode == "auto" else args.mode, per_class)
    tc = _train_config(args, mode)
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
            from aigc_core.training.recipe import MIN_STEPS

            ccfg = ClassifierConfig(heads={h: [] for h in heads}, mode=mode, feature_cache_dir=str(cache))
            model, metrics = train_classifier(texts, labels, ccfg, tc, val_texts, val_labels,
                                              min_steps=0 if args.epochs else MIN_STEPS)
            metrics["mode_reason"] = mode_reason
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


def _eval_records(args, mv) -> tuple[list, str | None]:
    """(records, what they are): --data, else the prep directory the version was trained
    on (its test split, else its validation split, said so)."""
    stored = mv.config.get("data")
    data_arg = args.data or (stored if stored and Path(stored).is_dir() else None)
    if data_arg:
        data = Path(data_arg)
        if data.is_dir():
            for part, name in (("test", "test split"), ("val", "validation split (the prep has no test rows)")):
                f = data / f"{part}.jsonl"
                if f.exists() and f.stat().st_size:
                    return _records(f), f"{name} of {data}"
            raise CLIError(f"{data} has no non-empty test.jsonl or val.jsonl")
        return _records(data, args.text_col, _csv_list(args.label_cols), _delimiter(args)), str(data)
    return [], None


def _eval_classifier(model, recs, args) -> dict[str, Any]:
    """Per head: metrics over rows whose label the model knows; a label never seen in
    training counts as an error (the model cannot predict it) and is reported."""
    from aigc_core.models.multihead import IGNORE, evaluate_logits

    heads = model.config.heads
    present = {h for r in recs for h, v in r.labels.items() if v is not None}
    scored = [h for h in heads if h in present]
    if not scored:
        given = sorted(present) or "none"
        raise CLIError(f"the evaluation rows carry no label for the model's head(s) {sorted(heads)} "
                       f"(labels found: {given}); pass --label-cols {','.join(heads)}")
    texts = [r.text for r in recs]
    proba = model.predict_proba(texts)
    out: dict[str, Any] = {}
    import numpy as np

    for h in scored:
        names = list(heads[h])
        pos = {n: i for i, n in enumerate(names)}
        gold = [r.labels.get(h) for r in recs]
        unknown = {}
        for g in gold:
            if g is not None and g not in pos:
                unknown[g] = unknown.get(g, 0) + 1
        idx = [i for i, g in enumerate(gold) if g is not None]
        known = [i for i in idx if gold[i] in pos]
        y = np.full((len(known), 1), IGNORE)
        y[:, 0] = [pos[gold[i]] for i in known]
        res = evaluate_logits({h: proba[h][known]}, y, {h: names}, detailed=True) if known else {}
        n_all = len(idx)
        correct = res.get(f"{h}/accuracy", 0.0) * len(known)
        out[f"{h}/accuracy"] = correct / max(1, n_all)  # unseen labels count as errors
        out[f"{h}/accuracy_on_known_labels"] = res.get(f"{h}/accuracy")
        out[f"{h}/macro_f1_on_known_labels"] = res.get(f"{h}/macro_f1")
        out[f"{h}/rows"] = n_all
        out[f"{h}/unknown_labels"] = unknown
        out[f"{h}/report"] = res.get(f"{h}/report")
        out[f"_{h}/confusion"] = {"labels": names, "matrix": res.get(f"{h}/confusion")}
    return out


def cmd_eval(args) -> int:
    kind, model, mv = _load(args)
    recs, source = _eval_records(args, mv)
    result: dict[str, Any] = {"name": mv.name, "version": mv.version, "evaluated_on": source,
                              "stored_metrics": mv.metrics}
    if not recs:
        result["note"] = ("no evaluation data: pass --data FILE (with --label-cols) or train from a prep "
                          "directory with a test split; stored_metrics are the training run's validation figures")
    else:
        texts = [r.text for r in recs]
        if kind == "classifier":
            metrics = _eval_classifier(model, recs, args)
            # The full confusion matrix is large (150 intents: ~270 KB): it goes to a file.
            confusion = {k[1:].split("/")[0]: metrics.pop(k) for k in list(metrics) if k.startswith("_")}
            out_path = Path(args.confusion_out) if args.confusion_out else (
                Path(args.artifacts_dir) / ".eval" / f"{mv.name}-{mv.tag}-confusion.json")
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(confusion))
            if not args.per_class:
                metrics = {k: v for k, v in metrics.items() if not k.endswith("/report")}
            result["metrics"] = metrics
            result["confusion_file"] = str(out_path)
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
    fmt = _Help
    parser = _Parser(prog="python -m aigc_core", description=__doc__.split("\n\n")[0], formatter_class=fmt)
    parser.add_argument("--artifacts-dir", default=str(artifacts_dir()),
                        help="model registry root (default: $AIGC_ARTIFACTS_DIR or var/artifacts)")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_cols(p, default_text="text"):
        p.add_argument("--text-col", default=default_text, help="text column / key")
        p.add_argument("--label-cols", default="", help="comma-separated label columns / keys")
        p.add_argument("--delimiter", default=",", help="CSV field separator (one character, or 'tab'; "
                                                        ".tsv files default to tab)")

    p = sub.add_parser("prep", help="CSV/JSONL -> cleaned train/val/test JSONL + content hashes",
                       formatter_class=fmt,
                       description="Split one labelled file into train / val / test JSONL. A data set with its own "
                                   "official test (or validation) file: pass it with --test-file (--val-file) and "
                                   "it is kept whole as that split; the input is then split only into the rest.")
    p.add_argument("input", help="the labelled .csv, .tsv or .jsonl file to split")
    data_cols(p)
    p.add_argument("--id-col", help="row id column / key (default: the row number)")
    p.add_argument("--time-col", help="timestamp column / key (needed by --split time)")
    p.add_argument("--split", choices=("stratified", "time"), default=PrepConfig.split,
                   help="stratified on the first label column, or by time (newest rows validate and test)")
    p.add_argument("--val-ratio", type=float, default=PrepConfig.val_ratio,
                   help="share of the input for validation (0 with --val-file)")
    p.add_argument("--test-ratio", type=float, default=PrepConfig.test_ratio,
                   help="share of the input for test (0 with --test-file)")
    p.add_argument("--max-chars", type=int, default=PrepConfig.max_chars, help="texts are cut to this length")
    p.add_argument("--seed", type=int, default=PrepConfig.seed, help="split seed")
    p.add_argument("--test-file", help="an official test file (same columns), kept whole as the test split")
    p.add_argument("--val-file", help="an official validation file, kept whole as the validation split")
    p.add_argument("--out", required=True, help="directory for train.jsonl, val.jsonl, test.jsonl, prep.json")
    p.set_defaults(func=cmd_prep)

    p = sub.add_parser("train", help="train a model and save it as a new registry version", formatter_class=fmt,
                       description="Classifiers train with the engine's fine-tuning recipe (the same defaults "
                                   "as the apps); unset flags keep the recipe's values. Metrics printed are "
                                   "validation figures (val_accuracy, <head>/val_macro_f1).")
    p.add_argument("kind", choices=CLASSIFIERS + LANGUAGE_MODELS)
    p.add_argument("--data", required=True, help="a prep directory or a .csv/.jsonl file")
    p.add_argument("--name", required=True, help="artifact name in the registry")
    data_cols(p)
    p.add_argument("--heads", help="classifier heads (label columns); default: every label in the data")
    p.add_argument("--mode", choices=("auto", "head", "top", "full", "contrastive"), default="auto",
                   help="encoder classifier mode; auto: from 500 training rows a full fine-tune, or contrastive "
                        "tuning (SetFit) when the median label has <= 16 rows; below 500 rows head only")
    p.add_argument("--order", type=int, default=3, help="n-gram order (ngram only)")
    p.add_argument("--epochs", type=int, help="default: the recipe's (3 for a fine-tune, more for small "
                                                "data; 8 in head mode)")
    p.add_argument("--batch-size", type=int, help="default: 32")
    p.add_argument("--lr", type=float, help="default: the recipe's (2e-4 fine-tune, 2e-3 head mode)")
    p.add_argument("--max-steps", type=int, help="hard cap on optimiser steps")
    p.add_argument("--patience", type=int, help="epochs without improvement before stopping; default: the "
                                                "recipe's (0 = run every epoch, keep the best)")
    p.add_argument("--seed", type=int, default=1234, help="training seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-promote", action="store_true", help="save the version without making it current")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="load an artifact and print its metrics (on --data when given)",
                       formatter_class=fmt,
                       description="Scores a version on --data (a labelled file, or a prep directory's test "
                                   "split); without --data, on the test split of the prep directory it was "
                                   "trained from. The output says which rows it scored ('evaluated_on'). Labels "
                                   "the model never saw count as errors and are listed.")
    p.add_argument("--name", required=True, help="artifact name in the registry")
    p.add_argument("--version", type=int, help="default: the promoted version")
    p.add_argument("--data", help="a prep directory (test, else val split) or a .csv/.tsv/.jsonl file")
    p.add_argument("--confusion-out", help="where to write the confusion matrices (JSON); default: "
                                           "<artifacts-dir>/.eval/<name>-<version>-confusion.json")
    p.add_argument("--per-class", action="store_true", help="also print the per-class report")
    data_cols(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("generate", help="continue a prompt with a language model", formatter_class=fmt)
    p.add_argument("--name", required=True, help="artifact name in the registry")
    p.add_argument("--version", type=int, help="default: the promoted version")
    p.add_argument("--prompt", default="", help="text to continue")
    p.add_argument("--max-tokens", type=int, default=64, help="tokens to generate")
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--top-k", type=int, default=0, help="sample from the k likeliest tokens (0: all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="1.0: none")
    p.add_argument("--stop", action="append", help="stop string (repeatable)")
    p.add_argument("--seed", type=int, help="sampling seed (default: random)")
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
