"""One training loop for every model of the toolkit (Olney et al. 2020 §3.3).

:func:`fit` trains any model on any map-style dataset whose items (or batched
``__getitems__``) are dicts of arrays (``flux``, ``target``, optional ``error``, ``weight``…):
Adam (or SGD), mini-batches, evaluation on the dev set after each epoch, optionally the
learning rate halved on a dev-loss plateau (``lr_plateau``), early stopping
after ``patience`` epochs without improvement keeping the best model (§3.3), a checkpoint
every epoch (``last.pt``, with the optimizer state, for ``resume``), the best model in
``model.pt`` (:mod:`yso_labels.core.checkpoint`), a CSV log, seeding, CPU/GPU, mixed
precision on GPUs and data parallelism under ``torchrun`` (:mod:`yso_labels.core.distributed`).

The loss is ``loss_fn(output, batch) -> (batch,)`` per-sample loss; the loop reduces each
training batch as the weighted mean ``Σ wᵢ lᵢ / Σ wᵢ`` (weights from ``batch["weight"]``, else
1; ``weight_norm="sum_w"``) or as the mean ``Σ wᵢ lᵢ / n`` (``weight_norm="batch"``: Keras'
``SUM_OVER_BATCH_SIZE`` reduction of astroNN's ``weighted_loss`` = loss × sample_weight, with
which Li et al. trained), identically on one process or many. The two agree without weights.
The photometric CNN (:mod:`yso_labels.photcnn`), APOGEE Net
(:mod:`apogee_net.network.train`), its adaptation and the LAMOST Bayesian CNN all train here.
Resuming (``options.resume`` and a ``last.pt``) refuses a run written with another
architecture, other :data:`RESUME_OPTIONS` or another caller ``meta["resume_key"]``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from yso_labels.core import distributed
from yso_labels.core.atomic import atomic_write
from yso_labels.core.checkpoint import read_checkpoint, save_checkpoint
from yso_labels.core.options import TrainOptions
from yso_labels.core.runtime import seed_everything

log = logging.getLogger(__name__)

BEST_NAME, LAST_NAME, LOG_NAME = "model.pt", "last.pt", "train_log.csv"


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def lr_factor(options: TrainOptions, step: int, steps_per_epoch: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based, over the whole run) as a fraction of
    ``options.lr``: 1 for ``constant``; for ``cosine`` a linear warm-up over ``warmup``
    epochs, then ``(1 + cos(π t)) / 2`` with ``t`` the fraction of the remaining steps done
    (Loshchilov & Hutter 2017, eq. 5 with η_min = 0)."""
    if options.schedule == "constant":
        return 1.0
    total = options.max_epochs * steps_per_epoch
    warm = options.warmup * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(total - warm, 1)
    return 0.5 * (1.0 + float(np.cos(np.pi * min(t, 1.0))))


@dataclass
class FitResult:
    """What :func:`fit` returns; the model it was given holds ``best_state`` on return."""

    best_state: dict[str, torch.Tensor]
    best_loss: float
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    model_path: Path | None = None


class ArrayDataset(torch.utils.data.Dataset):
    """In-memory dataset of spectra: items ``{"flux", "error", "target", "weight",
    "index"}`` like :class:`apogee_net.spectra.dataset.SpectraDataset`, with a batched
    ``__getitems__``. ``error`` defaults to ones (every pixel valid), ``weight`` to ones."""

    def __init__(self, flux, target, error=None, weight=None):
        self.flux = np.asarray(flux, dtype=np.float32)
        n = len(self.flux)
        self.target = np.asarray(target, dtype=np.float32).reshape(n, -1)
        self.error = (np.ones_like(self.flux) if error is None
                      else np.asarray(error, dtype=np.float32))
        self.weight = (np.ones(n, np.float32) if weight is None
                       else np.asarray(weight, dtype=np.float32))
        if self.error.shape != self.flux.shape or self.weight.shape != (n,):
            raise ValueError("ArrayDataset: flux, error (n, npix), target (n, k) and "
                             "weight (n,) must agree in length")

    def __len__(self) -> int:
        return len(self.flux)

    def __getitems__(self, idx):
        idx = np.asarray(idx)
        return {"flux": self.flux[idx], "error": self.error[idx], "target": self.target[idx],
                "weight": self.weight[idx], "index": idx.astype(np.int64)}

    def __getitem__(self, i):
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


def collate(items) -> dict[str, Any]:
    """Batch dict of tensors from a list of item dicts, an already batched dict, or the
    list of :class:`apogee_net.spectra.dataset.SpectraDataset` (which carries ``.collated``)."""
    if getattr(items, "collated", None) is not None:
        items = items.collated
    if isinstance(items, Mapping):
        return {k: _as_tensor(v) for k, v in items.items()}
    keys = items[0].keys()
    return {k: _as_tensor(np.stack([np.asarray(it[k]) for it in items])) for k in keys}


def _as_tensor(v):
    if isinstance(v, torch.Tensor):
        return v
    arr = np.asarray(v)
    return torch.from_numpy(np.ascontiguousarray(arr)) if arr.dtype.kind in "biuf" else v


def default_prepare(batch: dict) -> dict:
    """Model input from the batch: ``flux`` as ``(batch, 1, npix)`` float32."""
    batch["input"] = batch["flux"].float().unsqueeze(1)
    return batch


def standardised_mse(output: torch.Tensor, batch: dict) -> torch.Tensor:
    """Per-sample mean squared error over the labels (Olney et al. 2020 eq. A1, up to the
    constant number of labels), on standardised targets; NaN targets are left out."""
    target = batch["target"].to(output.dtype)
    present = torch.isfinite(target)
    sq = torch.where(present, (output - torch.nan_to_num(target)) ** 2, 0.0)
    return sq.sum(1) / present.sum(1).clamp(min=1)


def to_device(batch: dict, device: torch.device) -> dict:
    """The tensors of ``batch`` moved to ``device`` (other values unchanged)."""
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}


def _autocast(device: torch.device, amp: bool):
    if not (amp and device.type == "cuda"):
        return contextlib.nullcontext(), None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return torch.autocast("cuda", dtype=dtype), scaler


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of the dropout RNG for one epoch on one rank: exact resume, decorrelated ranks."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def fit(model: torch.nn.Module, train_set, dev_set, loss_fn: Callable, out_dir,
        options: TrainOptions, meta: Mapping[str, Any] | None = None, *,
        prepare: Callable[[dict], dict] = default_prepare,
        train_prepare: Callable[[dict], dict] | None = None,
        init_state: Mapping[str, torch.Tensor] | None = None,
        best_loss: float | None = None,
        arch_kwargs: Mapping[str, Any] | None = None) -> FitResult:
    """Train ``model`` with early stopping on the dev loss; see the module docstring.

    ``prepare(batch) -> batch`` runs on the device and must set ``batch["input"]`` (and may
    standardise ``batch["target"]``); ``train_prepare``: used instead on training batches
    (e.g. with noise augmentation; default ``prepare``); ``init_state``: weights to start
    from (e.g. the best model of a previous round); ``best_loss``: dev loss a new best must
    beat (e.g. that of ``init_state``; default ∞: the first epoch is a best);
    ``arch_kwargs``: constructor arguments saved in the checkpoint (default
    ``model.arch_kwargs``); ``meta``: saved in the checkpoint (label names, scalers,
    provenance). Writes ``out_dir/model.pt`` (best),
    ``last.pt`` (every epoch) and ``train_log.csv``; only rank 0 writes. Returns a
    :class:`FitResult`; the model holds the best weights on return. ``dev_set`` None: the
    training loss is monitored.
    """
    out_dir = Path(out_dir)
    arch_kwargs = dict(arch_kwargs if arch_kwargs is not None else model.arch_kwargs)
    meta = dict(meta or {})
    ctx = distributed.setup(options.device)
    try:
        return _fit(model, train_set, dev_set, loss_fn, out_dir, options, meta, prepare,
                    train_prepare or prepare, init_state, best_loss, arch_kwargs, ctx)
    finally:
        distributed.teardown(ctx)


def _fit(model, train_set, dev_set, loss_fn, out_dir, options, meta, prepare, train_prepare,
         init_state, best_loss, arch_kwargs, ctx) -> FitResult:
    if len(train_set) == 0:
        raise ValueError("training set is empty")
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(options.seed)
    device = ctx.device
    if init_state is not None:
        model.load_state_dict(init_state)
    model.to(device)
    optimizer = OPTIMIZERS[options.optimizer](model.parameters(), lr=options.lr,
                                              weight_decay=options.weight_decay)
    autocast, scaler = _autocast(device, options.amp)
    plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5,
                                                          patience=options.lr_plateau)
               if options.lr_plateau else None)
    if options.amp and device.type != "cuda":
        log.info("mixed precision (--amp) needs a GPU: ignored on %s", device)

    state = {"epoch": 0, "best_loss": float("inf") if best_loss is None else float(best_loss),
             "best_epoch": 0, "bad_epochs": 0, "history": [], "finished": False}
    best_state = None
    last_path, best_path = out_dir / LAST_NAME, out_dir / BEST_NAME
    if options.resume and last_path.exists():
        best_state = _resume(last_path, best_path, model, optimizer, scaler, plateau,
                             arch_kwargs, _resume_key(options, meta), state)
        log.info("resuming %s after epoch %d (best dev loss %.5g at epoch %d)", out_dir,
                 state["epoch"], state["best_loss"], state["best_epoch"])
    elif options.resume:
        log.info("--resume: no %s yet, starting a new run", last_path)
    if best_state is None:
        best_state = _cpu_state(model)

    per_rank = options.batch_size // ctx.world_size
    if per_rank < 1:
        raise ValueError(f"batch size {options.batch_size} is smaller than the number of "
                         f"processes ({ctx.world_size})")
    sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank,
                                 shuffle=True, seed=options.seed, drop_last=False)
    loader_kw = {"num_workers": options.workers, "collate_fn": collate,
                 "pin_memory": device.type == "cuda",
                 "persistent_workers": options.workers > 0}
    train_loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler, **loader_kw)
    dev_loader = None
    if dev_set is not None and len(dev_set) > 0:
        dev_loader = DataLoader(dev_set, batch_size=per_rank,
                                sampler=distributed.ShardSampler(len(dev_set), ctx), **loader_kw)
    else:
        log.warning("no dev set: early stopping monitors the training loss")
    net = distributed.wrap(model, ctx)
    full_meta = {**meta, "train_options": asdict(options), "world_size": ctx.world_size}

    while not state["finished"] and state["epoch"] < options.max_epochs:
        epoch = state["epoch"] + 1
        sampler.set_epoch(epoch)
        torch.manual_seed(_epoch_seed(options.seed, epoch, ctx.rank))
        t0 = time.perf_counter()
        train_loss = _train_epoch(net, train_loader, loss_fn, train_prepare, optimizer, autocast,
                                  scaler, ctx, epoch, options)
        seconds = time.perf_counter() - t0
        dev_loss = (_evaluate(model, dev_loader, loss_fn, prepare, autocast, ctx)
                    if dev_loader is not None else train_loss)
        if not np.isfinite(dev_loss):
            raise ValueError(f"training diverged at epoch {epoch} (dev loss {dev_loss}); "
                             "try a smaller learning rate")
        if plateau is not None:
            plateau.step(dev_loss)
        improved = dev_loss < state["best_loss"]
        if improved:
            state.update(best_loss=dev_loss, best_epoch=epoch, bad_epochs=0)
            best_state = _cpu_state(model)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        state["finished"] = state["bad_epochs"] >= options.patience
        state["history"].append({
            "epoch": epoch, "train_loss": train_loss, "dev_loss": dev_loss,
            "best_dev_loss": state["best_loss"], "improved": int(improved),
            "lr": optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3),
            "train_spectra_per_s": round(len(train_set) / max(seconds, 1e-9), 2)})
        log.info("epoch %d: train loss %.5g, dev loss %.5g%s (%.1f s)", epoch, train_loss,
                 dev_loss, " (best)" if improved else f" ({state['bad_epochs']} without gain)",
                 seconds)
        if ctx.is_main:
            training = {"epoch": epoch, "dev_loss": state["best_loss"],
                        "history": state["history"]}
            if improved:
                save_checkpoint(best_path, model, arch_kwargs, full_meta, training)
            save_checkpoint(last_path, model, arch_kwargs, full_meta, {
                **state, "optimizer": optimizer.state_dict(),
                "grad_scaler": scaler.state_dict() if scaler is not None else None,
                "lr_plateau": plateau.state_dict() if plateau is not None else None})
            _write_log(out_dir / LOG_NAME, state["history"])
        distributed.barrier(ctx)
    if state["finished"]:
        log.info("early stopping after epoch %d: best dev loss %.5g at epoch %d",
                 state["epoch"], state["best_loss"], state["best_epoch"])
    model.load_state_dict(best_state)
    return FitResult(best_state=best_state, best_loss=state["best_loss"],
                     best_epoch=state["best_epoch"], history=state["history"],
                     stopped_early=state["finished"],
                     model_path=best_path if state["best_epoch"] > 0 else None)


def _batch_losses(net, batch, loss_fn, prepare, autocast, device):
    """Per-sample losses of one batch and their weights (the batch's ``weight``, else 1)."""
    batch = prepare(to_device(batch, device))
    with autocast:
        output = net(batch["input"])
    per = _per_sample(loss_fn(_as_float(output), batch), len(batch["input"]))
    w = batch.get("weight")
    return per, (torch.ones_like(per) if w is None else w.to(per.dtype))


def _train_epoch(net, loader, loss_fn, prepare, optimizer, autocast, scaler, ctx, epoch,
                 options) -> float:
    from tqdm.auto import tqdm

    net.train()
    total = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", leave=False,
               disable=not (options.progress and ctx.is_main))
    for i, batch in enumerate(bar):
        if options.schedule != "constant":
            factor = lr_factor(options, (epoch - 1) * len(loader) + i, len(loader))
            for group in optimizer.param_groups:
                group["lr"] = options.lr * factor
        per, w = _batch_losses(net, batch, loss_fn, prepare, autocast, ctx.device)
        wsum = w.sum()
        # Σ_batch w l / (Σ_all-ranks w / world): DDP's mean over ranks then gives Σ w l / Σ w
        # ("sum_w"); with the sample count instead of Σ w: Σ w l / n ("batch", Keras/astroNN)
        norm = wsum if options.weight_norm == "sum_w" else torch.full_like(wsum, len(w))
        global_w = distributed.all_reduce_sum(norm.detach(), ctx) / ctx.world_size
        loss = (w * per).sum() / global_w.clamp(min=1e-30)
        if not torch.isfinite(loss):
            raise ValueError(f"training diverged at epoch {epoch} (loss {loss.item()}); "
                             "check the inputs for non-finite values or lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total += torch.stack([(w * per).sum().detach().double(), wsum.detach().double()])
        bar.set_postfix(loss=f"{loss.item():.4g}")
    total = distributed.all_reduce_sum(total, ctx)
    return float(total[0] / total[1])


@torch.no_grad()
def _evaluate(model, loader, loss_fn, prepare, autocast, ctx) -> float:
    """Weighted mean loss over the whole dev set (all ranks), dropout off."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    for batch in loader:
        per, w = _batch_losses(model, batch, loss_fn, prepare, autocast, ctx.device)
        total += torch.stack([(w * per).sum().double(), w.sum().double()])
    total = distributed.all_reduce_sum(total, ctx)
    return float(total[0] / total[1]) if total[1] > 0 else float("nan")


def _as_float(output):
    """float32 model output: a tensor or a tuple of tensors (e.g. value and log variance)."""
    if isinstance(output, (tuple, list)):
        return type(output)(o.float() for o in output)
    return output.float()


def _per_sample(per: torch.Tensor, n: int) -> torch.Tensor:
    if per.dim() != 1 or per.shape[0] != n:
        raise ValueError(f"loss_fn must return one loss per sample, shape ({n},); got "
                         f"{tuple(per.shape)}")
    return per


def _cpu_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


#: Training options that must be the same to resume a run (``patience``, ``max_epochs``,
#: ``device``, ``workers``, ``amp`` and ``progress`` may change between the two calls).
RESUME_OPTIONS = ("batch_size", "lr", "dropout", "seed", "optimizer", "lr_plateau",
                  "weight_decay", "schedule", "warmup")


def _resume_key(options: TrainOptions, meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the run that wrote ``last.pt``: the
    :data:`RESUME_OPTIONS` and the caller's ``meta["resume_key"]`` (e.g. the data options)."""
    opts = asdict(options)
    return {"options": {k: opts[k] for k in RESUME_OPTIONS},
            "caller": meta.get("resume_key")}


def check_resumable(last_path, options: TrainOptions, meta: Mapping[str, Any]) -> None:
    """Refuse (ValueError naming what differs) to resume ``last_path`` with ``options`` and
    the caller's ``meta["resume_key"]`` (e.g. content fingerprints of the store and labels)
    unless they are those it was written with; callers run it before any work."""
    _check_key(last_path, read_checkpoint(last_path), _resume_key(options, meta))


def _check_key(last_path, ckpt, key) -> None:
    saved_opts = ckpt["meta"].get("train_options", {})
    saved = {"options": {k: saved_opts.get(k, TrainOptions.__dataclass_fields__[k].default)
                         for k in RESUME_OPTIONS},
             "caller": ckpt["meta"].get("resume_key")}
    if saved != key:
        diff = [f"{name}: {saved[part].get(name) if saved[part] else None!r} there, "
                f"{key[part].get(name) if key[part] else None!r} now"
                for part in ("options", "caller")
                for name in sorted(set(saved[part] or {}) | set(key[part] or {}))
                if (saved[part] or {}).get(name) != (key[part] or {}).get(name)]
        raise ValueError(f"cannot resume from {last_path}: it was written with other options or "
                         "inputs "
                         f"({'; '.join(diff)}); rerun with the same inputs and options, or "
                         "pass --restart (train) to start a new run there")


def _resume(last_path, best_path, model, optimizer, scaler, plateau, arch_kwargs, key,
            state):
    ckpt = read_checkpoint(last_path)
    if ckpt["arch_kwargs"] != arch_kwargs:
        raise ValueError(f"cannot resume from {last_path}: it holds a model with "
                         f"{ckpt['arch_kwargs']}, this run builds {arch_kwargs}")
    _check_key(last_path, ckpt, key)
    training = ckpt.get("training") or {}
    if "optimizer" not in training:
        raise ValueError(f"cannot resume from {last_path}: it has no optimizer state")
    model.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(training["optimizer"])
    if scaler is not None and training.get("grad_scaler"):
        scaler.load_state_dict(training["grad_scaler"])
    if plateau is not None and training.get("lr_plateau"):
        plateau.load_state_dict(training["lr_plateau"])
    for key in state:
        state[key] = copy.deepcopy(training[key])
    return read_checkpoint(best_path)["state_dict"] if best_path.exists() else None


def _write_log(path: Path, history: list[dict]) -> None:
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def read_log(path) -> list[dict[str, float]]:
    """The rows of a ``train_log.csv`` as dicts of floats."""
    with open(path) as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
