"""Stage pretrain: forward and backward LSTM language models on unlabelled text (train split + corpora).

Writes models/lm/lm.pt (both models, their config and the tokenizer's sha256) and metrics/lm.json.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import MLFlowLogger
from tokenizers import Tokenizer
from torch.utils.data import DataLoader

from pipelines.cli import parser, run
from pipelines.params import Params, PretrainParams, load_params
from serving.contract import SEP_ID
from training.jsonio import write_json
from training.language import SAMPLE_TEXTS
from training.lm import LanguageModelModule, StreamWindows
from training.precision import resolve_precision
from training.prepare import iter_texts
from training.tokenizer import file_sha256
from training.tracking import flatten, lm_experiment_name, open_experiment, run_tags, tracking_uri
from training.unlabelled import choose_corpora, read_unlabelled

log = logging.getLogger("textclf.pretrain")


def token_stream(tokenizer: Tokenizer, texts: Iterable[str], max_tokens: int,
                 chunk: int = 10_000) -> tuple[torch.Tensor, list[str]]:
    """Texts in order, each ended by [SEP], cut at max_tokens; and the texts it read. Encoded a chunk at a
    time and read no further than the budget, so a big train split costs no more than a small one."""
    ids: list[int] = []
    used: list[str] = []
    texts = iter(texts)
    while len(ids) < max_tokens and (batch := list(itertools.islice(texts, chunk))):
        for text, enc in zip(batch, tokenizer.encode_batch(batch, add_special_tokens=False), strict=True):
            ids += [*enc.ids, SEP_ID]
            used.append(text)
            if len(ids) >= max_tokens:
                break
    return torch.tensor(ids[:max_tokens], dtype=torch.long), used


def fit_direction(stream: torch.Tensor, params: PretrainParams, vocab_size: int, logger) -> tuple[dict, dict]:
    """One language model over `stream`: the tail `heldout_ratio` is held out for perplexity."""
    L.seed_everything(params.seed, verbose=False)
    cut = int(len(stream) * (1 - params.heldout_ratio))
    train = StreamWindows(stream[:cut], params.streams, params.bptt)
    heldout = StreamWindows(stream[cut:], max(1, min(params.streams, (len(stream) - cut) // (4 * params.bptt))),
                            params.bptt)
    loader = lambda ds: DataLoader(ds, batch_size=None, shuffle=False)  # noqa: E731 - windows must stay in order
    module = LanguageModelModule(vocab_size, params.embedding_dim, params.hidden_size, params.num_layers,
                                 params.dropout, params.lr)
    trainer = L.Trainer(max_epochs=params.max_epochs, accelerator=params.accelerator, devices=1,
                        precision=resolve_precision(params.precision, params.accelerator),
                        gradient_clip_val=params.gradient_clip_val or None,
                        logger=logger, enable_checkpointing=False, enable_model_summary=False,
                        num_sanity_val_steps=0, log_every_n_steps=50)
    trainer.fit(module, loader(train), loader(heldout))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return module.model.state_dict(), {"val_ppl": metrics["val_ppl"], "train_ppl": metrics.get("train_ppl"),
                                       "tokens": len(stream), "model": module.model}


def main() -> None:
    p = parser(__doc__, "data", "metrics")
    p.add_argument("--out", default="models/lm")
    args = p.parse_args()
    all_params: Params = load_params(args.params)
    params = all_params.pretrain
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / "DISABLED"  # keeps the stage's output folder non-empty, which DVC otherwise warns about
    if not params.enabled:
        log.warning("pretrain: pretrain.enabled is false; the classifiers will train from scratch")
        for stale in (out / "lm.pt", out / "samples-forward.txt", out / "samples-backward.txt"):
            stale.unlink(missing_ok=True)
        marker.write_text("pretrain.enabled is false in params.yaml: no language model was trained.\n")
        write_json(args.metrics / "lm.json", {"enabled": False})
        return
    marker.unlink(missing_ok=True)
    tokenizer_path = args.data / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_truncation()  # the stream is contiguous; max_len is for classification only
    train = args.data / "train.parquet"  # never val or test
    corpora, language = choose_corpora(params.corpora, list(iter_texts(train, SAMPLE_TEXTS)))
    log.info("pretrain: %s; unlabelled corpora %s", language.reason, corpora or "none")
    unlabelled = read_unlabelled(corpora).values()
    name = lm_experiment_name(all_params.data.source)
    open_experiment(name)
    result, start = {"enabled": True}, time.perf_counter()
    states = {}
    # tokenised once, read both ways
    forward_stream, texts = token_stream(tokenizer, itertools.chain(iter_texts(train), *unlabelled), params.max_tokens)
    for direction in directions(all_params):
        stream = forward_stream.flip(0) if direction == "backward" else forward_stream
        logger = MLFlowLogger(experiment_name=name, tracking_uri=tracking_uri(), run_name=f"lm-{direction}",
                              tags=run_tags(f"lm-{direction}", args.data))
        logger.log_hyperparams(flatten({"pretrain": {**params.model_dump(), "corpora": corpora}}))
        logger.experiment.set_tag(logger.run_id, "language", language.language)
        states[direction], info = fit_direction(stream, params, tokenizer.get_vocab_size(), logger)
        samples = sample_texts(info.pop("model"), tokenizer, texts, params, reverse=direction == "backward")
        logger.experiment.log_text(logger.run_id, "\n\n".join(samples), "samples.txt")
        (out / f"samples-{direction}.txt").write_text("\n".join(samples) + "\n", encoding="utf-8")
        result[direction] = info  # numbers only: DVC reads this file as metrics
        log.info("pretrain %s: held-out perplexity %.1f over %d tokens", direction, info["val_ppl"], info["tokens"])
    result["seconds"] = round(time.perf_counter() - start, 1)
    torch.save({**states, "config": params.model_dump(), "tokenizer_sha256": file_sha256(tokenizer_path),
                "vocab_size": tokenizer.get_vocab_size()}, out / "lm.pt")
    write_json(args.metrics / "lm.json", result)


def directions(params: Params) -> tuple[str, ...]:
    """The language models to train: the backward one only when a classifier takes LSTM layers from it.

    With `train.trainer.lm_transfer: embedding` (the default) the classifiers take the forward model's embedding
    alone, so a backward model would cost half the stage and change nothing.
    """
    if params.train.trainer.lm_transfer == "all":
        return ("forward", "backward")
    log.info("pretrain: forward language model only: train.trainer.lm_transfer is embedding, which takes the "
             "forward model's embedding (lm_transfer: all also trains and uses a backward one)")
    return ("forward",)


def sample_texts(model, tokenizer: Tokenizer, texts: list[str], params: PretrainParams, reverse: bool) -> list[str]:
    """A few continuations of real text openings, to see what the model learned."""
    samples = []
    for i in range(params.samples):
        prompt = tokenizer.encode(texts[i * 97 % len(texts)][:4], add_special_tokens=False).ids or [SEP_ID]
        if reverse:
            prompt = prompt[::-1]
        ids = model.sample(prompt, 30, params.sample_temperature, seed=params.seed + i)
        ids = ids[: ids.index(SEP_ID)] if SEP_ID in ids else ids
        full = (prompt + ids)[::-1] if reverse else prompt + ids
        samples.append("".join(tokenizer.id_to_token(t) for t in full))
    return samples


if __name__ == "__main__":
    run(main)
