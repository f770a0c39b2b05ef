"""What one training is built from, once (``setup``): the student (initialised from its parent where shapes
allow), its precision, the teacher signal, the optimizer and the training data."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pas_models.data.dataset import ClipDataset
from pas_models.data.formats import load_video_list
from pas_models.errors import PasError
from pas_models.inherit import can_init_from_parent, init_from_parent
from pas_models.nets import build_model
from pas_models.spec import ArchSpec
from pas_models.train import distributed
from pas_models.train.accel import Feeding, Precision, compiled, sgd
from pas_models.train.features import FeatureStudent
from pas_models.train.sampler import ResumableSampler
from pas_models.train.schedule import base_lr
from pas_models.train.task import TrainTask
from pas_models.train.teacher import (
    CachedTeacher,
    LiveTeacher,
    TeacherSignal,
    build_teacher,
    load_weights,
    teacher_cache_for,
)

log = logging.getLogger(__name__)


def student_spec(task: TrainTask) -> ArchSpec:
    if task.recipe.dropout is None:
        return task.student
    return task.student.replace(head_dropout=task.recipe.dropout)


@dataclass
class Training:
    """Everything one training needs, built once (``setup``) and then stepped (``_train``)."""

    task: TrainTask
    env: distributed.DistEnv
    device: torch.device
    out: Path
    spec: ArchSpec
    precision: Precision
    feeding: Feeding
    model: nn.Module  # the student
    trained: nn.Module  # what the optimizer trains: the student, with feature adapters if any
    train_model: nn.Module  # trained, DDP-wrapped when world > 1, compiled when the recipe says so
    teacher: TeacherSignal
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    peak_lr: float
    finetuned: bool
    dataset: ClipDataset
    sampler: ResumableSampler
    steps_per_epoch: int
    train_list: Any
    val_list: Any


def setup(task: TrainTask, env: distributed.DistEnv, device: torch.device, out: Path) -> Training:
    """Model (initialised from the parent where shapes allow), teacher signal, optimizer, data."""
    recipe, spec = task.recipe, student_spec(task)
    log.info("%s (attempt %d): %d process(es), this is rank %d on %s", task.hypothesis, task.attempt, env.world,
             env.rank, device)
    train_list, val_list = load_video_list(task.data, "train"), load_video_list(task.data, "val")
    torch.manual_seed(task.seed)  # same initial weights on every rank
    model = build_model(spec)
    finetune = False
    if task.parent is not None and task.parent_checkpoint is not None and can_init_from_parent(task.parent, spec):
        how = init_from_parent(model, load_weights(task.parent_checkpoint), task.parent, spec)
        log.info("%s: initialised from %s, %s (weights %s)", task.hypothesis, task.parent.label,
                 task.parent_checkpoint, how)
        finetune = True
    precision, feeding = Precision.of(recipe, device, task.hypothesis), Feeding.of(recipe, device)
    cached = task.teacher is not None and task.distill.cache is not None
    cache = teacher_cache_for(task, train_list.samples) if cached else None
    network = build_teacher(task, device) if not cached else None
    # what the optimizer trains: the student, plus one adapter per stage with feature distillation
    trained: nn.Module = model
    features = network is not None and task.distill.feature_weight > 0
    if features:
        trained = FeatureStudent(model, network, task.distill.feature_loss)
    trained.to(device, memory_format=precision.memory_format)
    teacher: TeacherSignal = TeacherSignal()
    if cache is not None:
        teacher = CachedTeacher()
    elif network is not None:
        teacher = LiveTeacher(network, features, precision.memory_format, task.distill.feature_loss == "margin")
        if not features:  # a stage tap's hooks stay out of a compiled graph
            teacher.network = compiled(teacher.network, recipe.compile, precision.gpu)
    scaler = torch.amp.GradScaler("cuda", enabled=precision.amp_dtype == torch.float16)
    peak = base_lr(recipe, recipe.batch_per_gpu * env.world, finetune, task.lr_divisor)
    optimizer = sgd(trained.parameters(), peak, recipe)
    train_model: nn.Module = trained
    if env.world > 1:
        if recipe.sync_bn and precision.gpu:
            trained = nn.SyncBatchNorm.convert_sync_batchnorm(trained)
        train_model = nn.parallel.DistributedDataParallel(trained, device_ids=[device.index] if precision.gpu
                                                          else None)
    train_model = compiled(train_model, recipe.compile, precision.gpu)
    ds = ClipDataset(train_list.samples, spec, None if cached else task.teacher, train=True,
                     clips=recipe.clips_per_video, backend=task.data.backend, mean=task.data.mean, std=task.data.std,
                     hflip=task.data.hflip, seed=task.seed, cache=cache, decode_device=feeding.decode_device)
    if cache is not None and (bad := cache.unreadable_videos()):
        ds.exclude(bad, "unreadable when the teacher cache was made")
    sampler = ResumableSampler(len(ds), env.world, env.rank, task.seed)
    steps_per_epoch = sampler.per_rank // recipe.batch_per_gpu
    if steps_per_epoch == 0:
        raise PasError(f"{task.hypothesis}: {len(ds)} training clips cannot fill one batch of "
                       f"{recipe.batch_per_gpu} per process x {env.world} processes")
    return Training(task, env, device, out, spec, precision, feeding, model, trained, train_model, teacher, optimizer,
                    scaler, peak, finetune, ds, sampler, steps_per_epoch, train_list, val_list)
