"""The executor: one recipe, any number of processes, through Accelerate.

``mm train RECIPE`` and ``accelerate launch -m mmcore train RECIPE`` both land
in `train`, which reads as the run does: `setup`, then `train_step` and its
logs and checkpoints until the last step, then `finish`. Accelerate owns
devices, mixed precision, gradient accumulation, DDP and checkpoint state;
this module owns the order of things: data position, masks, the loss
reduction (`LossReducer`), learning-rate schedule, logs, checkpoints and the
final model folder.

Exact resume: the data order and each sample's augmentation are pure
functions of (seed, epoch, index) (`mmcore.batches`) and each step's mask
generator is seeded from (seed, step, rank), so a run resumed from a checkpoint
sees the same batches and masks as one never stopped. Nothing finished is lost:
the run folder is locked and never cleared (`mmcore.run_folder`), checkpoints
are checksummed (`mmcore.checkpoint`), a diverging run stops before it writes
non-finite weights, and workers end with their launcher (`mmcore.watchdog`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, ProjectConfiguration, broadcast_object_list, gather_object, set_seed
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mmcore.batches import DataPosition, iterate_batches, iterate_stream
from mmcore.card import render_card
from mmcore.checkpoint import list_checkpoints, load_latest, save_checkpoint, together, write_json_atomic
from mmcore.config import is_joint, model_dict
from mmcore.errors import ConfigError, DivergedError
from mmcore.joint import JointCollate, JointModel
from mmcore.joint_data import PairedDatasets
from mmcore.model import MaskedModel, MaskedOutput, ModelFolder, build_part, model_class, record_joint_sources, record_sources
from mmcore.plugins import get_registry
from mmcore.run_folder import RunLock, existing_run_files, move_aside, refuse_unless_fresh
from mmcore.streams import FIT_RECORDS, SampleList, is_stream
from mmcore.watchdog import stop_with_launcher


class LossReducer:
    """Reduces per-token losses once per optimizer step, over every micro-batch and process.

    Each micro-batch backpropagates its *unnormalised* sum of per-token losses
    × weights; at the step's last micro-batch the scored-token counts of all
    micro-batches and processes are summed (one all-reduce, on the device) and
    the gradients rescaled so that the step minimised Σ loss / global count.
    A token thus weighs the same whatever the accumulation, the number of
    processes or how many tokens its micro-batch happened to score.
    """

    def __init__(self, weights: dict[str, float], device: torch.device) -> None:
        self.weights = dict(weights)
        self.total = torch.zeros((), device=device)
        self.count = torch.zeros((), device=device)

    def add(self, out: MaskedOutput) -> torch.Tensor:
        """The value to backpropagate for one micro-batch; its terms are kept for the step."""
        total, count = out.loss_terms(self.weights)
        self.total += total.detach().float()
        self.count += count.detach().float()
        return total

    def reduce_gradients(self, accelerator: Accelerator, model: torch.nn.Module) -> torch.Tensor:
        """After the step's last backward: rescale gradients, return the step's global mean loss."""
        summed = accelerator.reduce(torch.stack([self.total, self.count]), reduction="sum")
        count = summed[1].clamp_min(1.0)
        # accelerator.backward divided each micro-batch by the accumulation steps, DDP averaged over processes
        scale = accelerator.gradient_accumulation_steps * accelerator.num_processes / count
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, scale)
        self.total, self.count = torch.zeros_like(self.total), torch.zeros_like(self.count)
        return summed[0] / count


def accumulate_gradients(
    accelerator: Accelerator,
    model: torch.nn.Module,
    reducer: LossReducer,
    micro_batches: Iterator[tuple[dict[str, torch.Tensor], torch.Generator]],
) -> torch.Tensor:
    """Forward and backward over one optimizer step's micro-batches; gradients end globally reduced."""
    for batch, generator in micro_batches:
        with accelerator.accumulate(model):
            out = model(batch, generator=generator)
            accelerator.backward(reducer.add(out))
    return reducer.reduce_gradients(accelerator, model)


@dataclass
class Run:
    """Everything a training run holds between steps."""

    cfg: DictConfig
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: Any
    scheduler: Any
    dataset_options: dict[str, Any]
    train_set: Any
    test_set: Any
    effective_batch: int
    lr: float
    out_dir: Path
    collate: Callable[[list[Any]], dict[str, Any]]
    step: int = 0
    position: DataPosition = dataclasses.field(default_factory=DataPosition)
    batches: Iterator | None = None
    reducer: LossReducer | None = None
    generator: torch.Generator | None = None
    shown: dict[str, torch.Tensor] | None = None
    nonfinite: torch.Tensor | None = None  # steps skipped for a non-finite loss or gradient, in all
    streak: torch.Tensor | None = None  # ... in a row, up to now
    lock: RunLock | None = None  # held by the main process

    @property
    def checkpoints(self) -> Path:
        return self.out_dir / "checkpoints"

    @property
    def metrics_file(self) -> Path:
        return self.out_dir / "metrics.jsonl"


def train(cfg: DictConfig, resume: bool = False, on_step: Callable[[int, float], None] | None = None, overwrite: bool = False) -> Path:
    """Run a recipe; return the final model folder. ``on_step(step, loss)`` is
    called on the main process after each optimizer step (logging hooks, tests).
    ``resume`` continues the folder's run; ``overwrite`` moves its old run aside first."""
    run = setup(cfg, resume, overwrite)
    log = StepLog(run)
    try:
        while run.step < cfg.train.steps:
            loss = train_step(run)
            run.step += 1
            log.after_step(loss)
            if on_step is not None and run.accelerator.is_main_process:
                on_step(run.step, loss.item())
            stop_if_diverged(run)
            checkpoint_if_due(run)
        log.close()
        return finish(run)
    finally:
        log.close()  # before an error's one line, so the progress bar does not follow it
        if run.lock is not None:
            run.lock.release()


# -- setup -----------------------------------------------------------------------


def setup(cfg: DictConfig, resume: bool, overwrite: bool = False) -> Run:
    """The accelerator and the run folder's lock, then everything else (`build_run`)."""
    t = cfg.train
    out_dir = Path(cfg.output_dir)
    if resume and overwrite:
        raise ConfigError("--resume continues the run in output_dir and --overwrite moves it aside: choose one")
    stop_with_launcher()
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=resolve_precision(t.precision),
        gradient_accumulation_steps=t.grad_accum,
        log_with=list(t.trackers) or None,
        project_config=ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "logs")),
        step_scheduler_with_optimizer=False,
        dynamo_backend="no",  # train.compile compiles the model's step alone, after the eager mask draws
    )
    refuse_unsupported_fsdp(accelerator)
    lock = claim_folder(accelerator, out_dir, resume, overwrite)
    try:
        run = build_run(cfg, accelerator, lock, resume)
        if t.compile:  # one graph per step: forward draws masks outside it (docs/design.md)
            accelerator.unwrap_model(run.model).compile_step()
        return run
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def build_run(cfg: DictConfig, accelerator: Accelerator, lock: RunLock | None, resume: bool) -> Run:
    """Data, model, optimizer and schedule; then the checkpoint to resume from, if asked."""
    t, out_dir = cfg.train, Path(cfg.output_dir)
    set_seed(t.seed)
    dataset_options = OmegaConf.to_container(cfg.data.dataset)
    build = build_joint if is_joint(cfg) else build_single
    model, train_set, test_set, collate = build(model_dict(cfg), dataset_options)
    check_loss_weights(dict(t.loss_weights), model.loss_parts())
    world = accelerator.num_processes
    effective_batch = cfg.data.batch_size * t.grad_accum * world
    streamed = is_stream(train_set)
    if not streamed and len(train_set) < cfg.data.batch_size * world:
        raise ConfigError(
            f"data: {len(train_set)} training samples, fewer than one batch (data.batch_size {cfg.data.batch_size} × {world} processes)"
        )
    if t.epochs:
        t.steps = steps_for_epochs(t.epochs, train_set, effective_batch)
    lr = t.base_lr * effective_batch / 256
    optimizer = torch.optim.AdamW(param_groups(model, t.weight_decay), lr=lr, betas=tuple(t.betas), fused=True)
    scheduler = warmup_cosine(optimizer, t.warmup_steps, t.steps, t.min_lr / lr if lr else 0.0)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    accelerator.init_trackers("mmcore", config=flat_config(cfg))
    accelerator.print(
        f"{cfg.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
        f"{'streamed samples' if streamed else f'{len(train_set)} samples'}, {t.steps} steps"
        f"{f' = {t.epochs:g} epochs' if t.epochs else ''}, "
        f"effective batch {effective_batch} = {cfg.data.batch_size} per device × {t.grad_accum} accumulation × "
        f"{world} processes, lr {lr:.3g} = base_lr {t.base_lr:g} × {effective_batch} / 256, "
        f"precision {accelerator.mixed_precision}, device {accelerator.device}"
    )
    run = Run(
        cfg,
        accelerator,
        model,
        optimizer,
        scheduler,
        dataset_options,
        train_set,
        test_set,
        effective_batch,
        lr,
        out_dir,
        collate,
        lock=lock,
    )
    resume_or_start(run, resume)
    device = accelerator.device
    run.shown = picture_batch(collate, test_set if len(test_set) else train_set, device)
    iterate = iterate_stream if streamed else iterate_batches
    run.batches = iterate(train_set, collate, cfg.data.batch_size, cfg.data.num_workers, t.seed, accelerator, run.position)
    run.reducer = LossReducer(dict(t.loss_weights), device)
    run.generator = torch.Generator(device=device)  # re-seeded for every micro-batch: no state to checkpoint
    run.nonfinite, run.streak = torch.zeros((), device=device), torch.zeros((), device=device)
    return run


def steps_for_epochs(epochs: float, train_set, effective_batch: int) -> int:
    """``train.epochs`` as optimizer steps, so a recipe gives a 150-row and a 570-row table the same
    number of passes over their samples (as ReMasker's and the Trainer's epochs do)."""
    if is_stream(train_set):
        raise ConfigError("train.epochs counts passes over a dataset of known length, and a stream has none: set train.steps instead")
    return max(1, math.ceil(epochs * len(train_set) / effective_batch))


def refuse_unsupported_fsdp(accelerator: Accelerator) -> None:
    """An accelerate config with ``distributed_type: FSDP`` reaches the workers as ACCELERATE_USE_FSDP=true.
    Accelerate honours it only on GPUs (and other accelerators); on the CPU it silently trains with DDP
    instead. Running something other than what was asked is refused, before the run folder is touched."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() != "true" or is_sharded(accelerator):
        return
    why = (
        "this machine has no CUDA GPU and Accelerate runs FSDP on GPUs only (on the CPU it would silently train with DDP instead)"
        if not torch.cuda.is_available()
        else f"Accelerate did not enable it (distributed type {accelerator.distributed_type.value})"
    )
    raise ConfigError(
        f"the accelerate config asks for FSDP (distributed_type: FSDP, as recipes/accelerate/fsdp.yaml) "
        f"but {why}; launch with recipes/accelerate/cpu-2proc.yaml here, or fsdp.yaml on GPUs"
    )


def claim_folder(accelerator: Accelerator, out_dir: Path, resume: bool, overwrite: bool) -> RunLock | None:
    """Lock the run folder and check this run may write there; decided on the main process, raised on all."""
    lock, refusal = None, None
    if accelerator.is_main_process:
        try:
            lock = RunLock(out_dir)
            note = lock.acquire()
            if note:
                accelerator.print(f"{out_dir}: {note}")
            if overwrite and (moved := move_aside(out_dir)):
                accelerator.print(f"--overwrite: the previous run's files were moved to {moved}")
            elif not resume:
                refuse_unless_fresh(out_dir)
        except (ConfigError, OSError) as exc:
            if lock is not None:
                lock.release()
            refusal = str(exc) if isinstance(exc, ConfigError) else f"cannot use run folder {out_dir}: {exc}"
    refusal = broadcast_object_list([refusal])[0]
    if refusal:
        raise ConfigError(refusal)
    return lock


def build_single(config: dict[str, Any], dataset_options: dict[str, Any]) -> tuple:
    """One modality: its dataset, its tokenizer fitted on the training split, the model; and the collate function."""
    registry = get_registry()
    tokenizer = registry.modality(config["modality"]).tokenizer(**config["tokenizer"])
    dataset = build_part(registry.dataset, config["modality"], dataset_options)
    train_set = dataset.build(tokenizer, "train")
    if hasattr(tokenizer, "fit"):  # statistics or a vocabulary learned from the training split (a stream's head)
        tokenizer.fit(SampleList(train_set.head(FIT_RECORDS)) if is_stream(train_set) else train_set)
        config["tokenizer"] = dataclasses.asdict(tokenizer)
    test_set = dataset.build(tokenizer, "test")  # after the fit: a streamed test split's samples are read fitted
    config.update(record_sources(config, dataset_options["name"]))
    return MaskedModel(config), train_set, test_set, tokenizer.collate


def build_joint(config: dict[str, Any], dataset_options: dict[str, Any]) -> tuple:
    """Several modalities: each stream's dataset paired, each tokenizer fitted on its own training split."""
    registry = get_registry()
    streams = config["modalities"]
    tokenizers = {s: registry.modality(e["modality"]).tokenizer(**e["tokenizer"]) for s, e in streams.items()}
    paired = PairedDatasets(**dataset_options)
    modalities = {s: e["modality"] for s, e in streams.items()}
    train_set, test_set = paired.build(tokenizers, modalities, "train"), paired.build(tokenizers, modalities, "test")
    if any(is_stream(part) for part in train_set.parts.values()):
        raise ConfigError(
            "data.dataset.modalities: a joint model reads map-style datasets only (paired by index); "
            "streamed parts (name=hf or webdataset) are for single-modality recipes for now"
        )
    for stream, tokenizer in tokenizers.items():
        if hasattr(tokenizer, "fit"):
            tokenizer.fit(train_set.parts[stream])
            streams[stream]["tokenizer"] = dataclasses.asdict(tokenizer)
    datasets = {s: options["name"] for s, options in dataset_options["modalities"].items()}
    config.update(record_joint_sources(config, datasets))
    return JointModel(config), train_set, test_set, JointCollate(tokenizers)


def resume_or_start(run: Run, resume: bool) -> None:
    """Restore the newest intact checkpoint when resuming; when none can be, stop and keep every file."""
    accelerator = run.accelerator
    saved = load_latest(accelerator, run.checkpoints, resume_key(run), model_tensors(run)) if resume else None
    if saved is not None:
        run.step, run.position = saved["step"], DataPosition(**saved["data"][accelerator.process_index])
    elif resume and list_checkpoints(run.checkpoints):
        raise ConfigError(
            f"--resume: no checkpoint under {run.checkpoints} is intact (see the warnings above); "
            f"nothing was changed. Restore one, or start afresh with --overwrite (moves them aside)"
        )
    elif resume and existing_run_files(run.out_dir):
        raise ConfigError(
            f"--resume: {run.out_dir} holds {', '.join(existing_run_files(run.out_dir))} but no "
            f"checkpoint (the run stopped before its first); start afresh with --overwrite"
        )
    elif resume:
        accelerator.print(f"--resume: {run.out_dir} holds no run yet; starting one")
    if accelerator.is_main_process:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        if run.step:
            keep_metrics_until(run.metrics_file, run.step)
    accelerator.wait_for_everyone()


def resume_key(run: Run) -> dict[str, Any]:
    """What a checkpoint must share with the run that resumes it: the model, the batch order, the processes."""
    cfg = run.cfg
    workers = {"num_workers": cfg.data.num_workers} if is_stream(run.train_set) else {}  # a stream's position is per worker
    return {
        "recipe": {
            "model": OmegaConf.to_container(cfg.model, resolve=True),
            "data": {"batch_size": cfg.data.batch_size, **workers},
            "train": {"seed": cfg.train.seed, "grad_accum": cfg.train.grad_accum},
        },
        "world_size": run.accelerator.num_processes,
    }


def model_tensors(run: Run) -> dict[str, tuple[str, list[int]]]:
    state = run.accelerator.unwrap_model(run.model).state_dict()
    return {k: (str(v.dtype).removeprefix("torch."), list(v.shape)) for k, v in state.items()}


def check_loss_weights(weights: dict[str, float], parts: list[str]) -> None:
    """``train.loss_weights`` may name only the model's loss parts."""
    unknown = sorted(set(weights) - set(parts))
    if unknown:
        raise ConfigError(f"train.loss_weights: unknown loss part(s) {unknown}; this model's parts: {', '.join(parts)}")


# -- one optimizer step ------------------------------------------------------------


def train_step(run: Run) -> torch.Tensor:
    """``grad_accum`` micro-batches, one globally reduced loss, one clipped optimizer step.
    Returns the step's loss as a device tensor (no host sync)."""
    t, accelerator = run.cfg.train, run.accelerator
    loss = accumulate_gradients(accelerator, run.model, run.reducer, micro_batches(run))
    norm = accelerator.clip_grad_norm_(run.model.parameters(), t.grad_clip or float("inf"))
    found_inf = skip_if_nonfinite(run.optimizer, norm)
    run.nonfinite += found_inf
    run.streak = (run.streak + found_inf) * found_inf  # zero again after a finite step
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    return loss


def micro_batches(run: Run) -> Iterator[tuple[dict[str, torch.Tensor], torch.Generator]]:
    """This step's micro-batches, each with its mask generator seeded from (seed, micro-step, rank)."""
    t, accelerator = run.cfg.train, run.accelerator
    for micro in range(t.grad_accum):
        batch = to_device(next(run.batches), accelerator.device)
        run.generator.manual_seed(mask_seed(t.seed, run.step * t.grad_accum + micro, accelerator.process_index))
        yield batch, run.generator


# -- logs, pictures and checkpoints ---------------------------------------------------


class StepLog:
    """Progress bar, metrics.jsonl, trackers and pictures, every ``log_every`` / ``picture_every`` steps."""

    def __init__(self, run: Run) -> None:
        self.run = run
        t = run.cfg.train
        self.bar = tqdm(total=t.steps, initial=run.step, disable=not run.accelerator.is_local_main_process, desc=run.cfg.name, unit="step")
        self.loss_sum = torch.zeros((), device=run.accelerator.device)
        self.window, self.tick = 0, time.perf_counter()
        self.nonfinite_seen = 0

    def after_step(self, loss: torch.Tensor) -> None:
        run, t = self.run, self.run.cfg.train
        self.loss_sum += loss.detach()
        self.window += 1
        self.bar.update(1)
        if run.step % t.log_every == 0 or run.step == t.steps:
            self.write()
        if t.picture_every and run.step % t.picture_every == 0:
            model = full_model(run)  # on every rank: under FSDP gathering the parameters is collective
            if run.accelerator.is_main_process:
                log_picture(run.accelerator, draw(model, run.shown), run.step)

    def write(self) -> None:
        run, accelerator = self.run, self.run.accelerator
        elapsed = time.perf_counter() - self.tick
        logs = {
            "train/loss": self.loss_sum.item() / self.window,
            "train/lr": run.scheduler.get_last_lr()[0],
            "train/items_per_s": run.effective_batch * self.window / elapsed,
            "train/nonfinite_steps": accelerator.reduce(run.nonfinite, reduction="sum").item(),
        }
        accelerator.log(logs, step=run.step)
        if logs["train/nonfinite_steps"] > self.nonfinite_seen:
            new, self.nonfinite_seen = logs["train/nonfinite_steps"] - self.nonfinite_seen, logs["train/nonfinite_steps"]
            accelerator.print(
                f"warning: {new:.0f} of the last {self.window} steps (to step {run.step}) had a "
                f"non-finite loss or gradient and were skipped; lr is {logs['train/lr']:.3g}"
            )
        self.bar.set_postfix(loss=f"{logs['train/loss']:.4f}", items_s=f"{logs['train/items_per_s']:.0f}")
        if accelerator.is_main_process:
            with run.metrics_file.open("a") as f:
                f.write(json.dumps({"step": run.step, **logs}) + "\n")
        self.loss_sum.zero_()
        self.window, self.tick = 0, time.perf_counter()

    def close(self) -> None:
        self.bar.close()


def checkpoint_if_due(run: Run) -> None:
    t = run.cfg.train
    if run.step % t.checkpoint_every == 0 or run.step == t.steps:
        check_finite_weights(run, "a checkpoint")
        positions = gather_object([run.position.snapshot()])
        state = {"step": run.step, "data": positions, "recipe": resume_key(run)["recipe"]}
        save_checkpoint(run.accelerator, run.checkpoints, state, t.keep_checkpoints)


def stop_if_diverged(run: Run) -> None:
    """Stop after ``train.max_nonfinite_steps`` skipped steps in a row (checked every that many steps and at
    logs: a host sync, so not every step); the last good checkpoint stays and no model folder is written."""
    t = run.cfg.train
    if run.step % min(t.max_nonfinite_steps, t.log_every) and run.step != t.steps:
        return
    streak = int(run.streak.item())
    if streak >= t.max_nonfinite_steps:
        raise DivergedError(
            f"training diverged: the last {streak} steps (to step {run.step}) had a non-finite loss "
            f"or gradient (train.max_nonfinite_steps={t.max_nonfinite_steps}); {last_good(run)}; "
            f"lower train.base_lr (lr was {run.lr:.3g}) or check the data"
        )


def check_finite_weights(run: Run, what: str) -> None:
    """Never save non-finite weights (at checkpoints and the end only). Each rank checks the values it holds
    (its shards under FSDP, its replica otherwise) and one reduction over ranks and parameters decides."""
    params = dict(run.accelerator.unwrap_model(run.model).named_parameters())
    local = [p.to_local() if hasattr(p, "to_local") else p for p in params.values()]  # FSDP2: DTensor shards
    nonfinite = torch.stack([(~torch.isfinite(p.detach())).any() for p in local]).float()
    finite = (run.accelerator.reduce(nonfinite, reduction="sum") == 0).cpu()
    if not finite.all():
        bad = [name for name, ok in zip(params, finite.tolist()) if not ok]
        raise DivergedError(
            f"weights became non-finite by step {run.step} ({', '.join(bad[:3])}"
            f"{' ...' if len(bad) > 3 else ''}): not writing {what}; {last_good(run)}; "
            f"lower train.base_lr (lr was {run.lr:.3g})"
        )


def last_good(run: Run) -> str:
    saved = list_checkpoints(run.checkpoints)
    return f"the last good checkpoint {saved[-1]} is kept" if saved else "no checkpoint had been written yet"


# -- the end of a run ----------------------------------------------------------------


def finish(run: Run) -> Path:
    """Check the ranks agree, evaluate, and write the model folder; returns it."""
    accelerator, cfg, t = run.accelerator, run.cfg, run.cfg.train
    check_finite_weights(run, "the model folder")
    state = accelerator.get_state_dict(run.model)  # every rank: under FSDP the gather is collective
    check_ranks_in_sync(accelerator, run.model, state, run.out_dir, run.step)
    unwrapped = full_model(run, state)
    folder = run.out_dir / "model"

    def write() -> None:
        info = dict(
            steps=t.steps,
            effective_batch=run.effective_batch,
            batch_size=cfg.data.batch_size,
            grad_accum=t.grad_accum,
            world_size=accelerator.num_processes,
            base_lr=t.base_lr,
            lr=run.lr,
            precision=accelerator.mixed_precision,
            name=cfg.name,
            description=cfg.description,
            dataset=run.dataset_options["name"],
            recipe=OmegaConf.to_yaml(cfg),
            metrics=evaluate(unwrapped, cfg, run.test_set, run.collate, run.metrics_file),
        )
        info["picture_image"] = draw(unwrapped, run.shown)
        log_picture(accelerator, info["picture_image"], run.step)
        save_model_folder(unwrapped, folder, info)
        accelerator.print(f"model folder: {folder}")
        if (folder / "reconstruction.png").exists():
            accelerator.print(f"picture: {folder / 'reconstruction.png'}")

    together(accelerator, write, f"the model folder {folder}", main_only=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return folder


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl; a torn line (a kill or a full disk mid-append) is skipped, not fatal."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines() if path.exists() else [], 1):
        try:
            row = json.loads(line)
        except ValueError:
            warnings.warn(f"{path}:{number}: skipped a torn line ({line[:40]!r}...)", stacklevel=2)
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def keep_metrics_until(path: Path, step: int) -> None:
    """A resumed run drops the rows logged after its checkpoint (they are logged again), atomically."""
    if path.exists():
        kept = [json.dumps(row) + "\n" for row in read_metrics(path) if row["step"] <= step]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)


def check_ranks_in_sync(accelerator: Accelerator, model: torch.nn.Module, state: dict[str, torch.Tensor], out_dir: Path, step: int) -> None:
    """Every rank must end with bit-identical parameters; a silent desync is an error. ``state`` is
    `Accelerator.get_state_dict`'s: each rank's replica, or under FSDP the full state gathered on the main
    process only (one copy, in sync by construction: its hash is recorded, there is nothing to compare)."""
    names = {name for name, _ in accelerator.unwrap_model(model).named_parameters()}
    digest = hashlib.sha256()
    for name, value in state.items():
        if name in names:
            digest.update(value.detach().float().cpu().numpy().tobytes())
    sharded = is_sharded(accelerator)
    digests = [digest.hexdigest()] if sharded else gather_object([digest.hexdigest()])
    if accelerator.is_main_process:
        write_json_atomic(
            out_dir / "ranks.json", {"step": step, "world_size": accelerator.num_processes, "parameter_sha256": digests, "sharded": sharded}
        )
    if len(set(digests)) > 1:
        raise RuntimeError(f"ranks ended with different parameters ({digests}): the processes trained unsynchronised")


def is_sharded(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.FSDP


def full_model(run: Run, state: dict[str, torch.Tensor] | None = None) -> torch.nn.Module | None:
    """The model with whole parameters, for forwards outside training (pictures, evaluation): the trained
    module itself, except under FSDP, where each rank holds shards and only ``forward`` gathers them; there
    a copy is built on the main process from the full state (`Accelerator.get_state_dict`, collective: call
    on every rank). None on the other ranks under FSDP."""
    accelerator = run.accelerator
    model = accelerator.unwrap_model(run.model)
    if not is_sharded(accelerator):
        return model
    state = accelerator.get_state_dict(run.model) if state is None else state
    if not accelerator.is_main_process:
        return None
    copy = model_class(model.config, ModelFolder)(model.config)  # the plain class: FSDP2 subclasses it
    copy.load_state_dict(state)
    return copy.to(accelerator.device)


def evaluate(model: MaskedModel | JointModel, cfg: DictConfig, test_set, collate, metrics_file: Path) -> dict[str, float]:
    """Last training loss and held-out loss (fixed masks, reduced over all scored tokens) for the card."""
    device = next(model.parameters()).device
    rows = read_metrics(metrics_file)
    metrics = {"train_loss": rows[-1]["train/loss"]} if rows else {}
    if len(test_set):
        loader = DataLoader(test_set, batch_size=cfg.data.batch_size, collate_fn=collate)
        generator = torch.Generator(device=device)
        weights = dict(cfg.train.loss_weights)
        total, count = 0.0, 0.0
        model.eval()
        with torch.no_grad():
            for i, batch in zip(range(cfg.data.eval_batches), loader):
                generator.manual_seed(mask_seed(cfg.train.seed, i, 0))
                terms = model(to_device(batch, device), generator=generator).loss_terms(weights)
                total, count = total + terms[0].item(), count + terms[1].item()
        metrics["eval_loss"] = total / max(count, 1.0)
    return metrics


def picture_batch(collate, dataset, device: torch.device, count: int = 8) -> dict[str, Any]:
    """A fixed handful of samples whose reconstructions are drawn during and after training."""
    samples = dataset.head(count) if is_stream(dataset) else [dataset[i] for i in range(min(count, len(dataset)))]
    return to_device(collate(samples), device)


def draw(model: MaskedModel, batch: dict[str, torch.Tensor]):
    """original | masked | reconstruction as a PIL image, with a fixed mask; None if the modality has no picture."""
    if not isinstance(model, MaskedModel) or model.modality.picture is None or not model.reconstructs:
        return None  # joint models draw no reconstruction grid yet
    training = model.training
    model.eval()
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(0)
    image = model.modality.picture(*model.reconstruct(batch, generator))
    model.train(training)
    return image


def log_picture(accelerator: Accelerator, image, step: int) -> None:
    if image is None or "tensorboard" not in [t.name for t in accelerator.trackers]:
        return
    writer = accelerator.get_tracker("tensorboard", unwrap=True)
    writer.add_image("reconstruction", np.asarray(image.convert("RGB")), step, dataformats="HWC")


def save_model_folder(model: MaskedModel, folder: Path, info: dict[str, Any]) -> None:
    """Write the whole folder beside its destination, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        image = info.pop("picture_image", None)
        if image is not None:
            image.save(tmp / "reconstruction.png")
            info["picture"] = "reconstruction.png"
        model.save_pretrained(tmp)
        (tmp / "README.md").write_text(render_card(model.config, info))
        old = folder.with_name(f".{folder.name}-old")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- small pieces --------------------------------------------------------------


def resolve_precision(precision: str) -> str:
    accepted = ("auto", "bf16", "fp16", "no")
    if precision not in accepted:
        raise ConfigError(f"train.precision: got {precision!r}, accepted: {', '.join(accepted)}")
    if precision != "auto":
        return precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norms and learned tokens (1-D or size-1 tensors), as in MAE."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or p.shape[0] == 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(optimizer, warmup: int, total: int, min_factor: float) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup then cosine decay to ``min_factor`` of the peak."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def skip_if_nonfinite(optimizer, grad_norm: torch.Tensor) -> torch.Tensor:
    """Fused AdamW skips its update on the device when ``found_inf`` is 1: no host sync. Returns it."""
    if hasattr(grad_norm, "full_tensor"):  # FSDP2: the norm is a DTensor; its full value is the global norm
        grad_norm = grad_norm.full_tensor()
    optimizer.optimizer.found_inf = (~torch.isfinite(grad_norm)).to(torch.float32)
    return optimizer.optimizer.found_inf


def mask_seed(seed: int, micro_step: int, rank: int) -> int:
    return (seed * 1_000_003 + micro_step * 7919 + rank * 104_729) % (2**63)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors moved to ``device``, also inside the per-modality sub-batches of a joint model."""

    def move(v: Any) -> Any:
        if torch.is_tensor(v):
            return v.to(device, non_blocking=True)
        return to_device(v, device) if isinstance(v, dict) else v

    return {k: move(v) for k, v in batch.items()}


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """Scalars only, as tensorboard's hparams want."""
    flat = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}{k}.", v)
        elif isinstance(node, (int, float, str, bool)):
            flat[prefix[:-1]] = node

    walk("", OmegaConf.to_container(cfg, resolve=True))
    return flat
