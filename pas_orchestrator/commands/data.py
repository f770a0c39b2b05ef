"""``pas data``: make a synthetic dataset, find unreadable videos, re-encode videos to a short side."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tqdm import tqdm

from pas_models.data import prepare as prep
from pas_models.data import probes, synth
from pas_models.data.backends import effective_backend
from pas_models.data.formats import load_dataset_config, load_video_list
from pas_models.data.tools import scan


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="synthetic dataset, dataset checks, video re-encoding", description=__doc__)
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    s = dsub.add_parser("synth", help="write a synthetic action dataset (real H.264 mp4 files)",
                        description=synth.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = synth.SynthConfig()
    s.add_argument("--out", required=True, type=Path, help="output folder (existing videos are kept)")
    s.add_argument("--classes", type=int, default=None,
                   help=f"2..{synth.MAX_CLASSES} (default {d.classes}); a probe: 2 or 4 (default 4)")
    s.add_argument("--videos-per-class", type=int, default=d.videos_per_class, help="training videos per class")
    s.add_argument("--val-per-class", type=int, default=d.val_per_class, help="validation videos per class")
    s.add_argument("--frames", type=int, default=d.frames, help="frames per video")
    s.add_argument("--seed", type=int, default=d.seed)
    s.add_argument("--probe", choices=probes.PROBES, default=None,
                   help="a known-answer probe whose evidence operator PROBE destroys (2 or 4 classes; "
                        "docs/benchmarks.md)")
    s.set_defaults(func=run_synth)

    c = dsub.add_parser("check", help="decode every video of a dataset and list the unreadable ones (exit 1 if any)",
                        description="Quick (default): each video opens and its first, middle and last frame "
                        "decode. --deep: every frame decodes (the first bad one is named, with FFmpeg's root "
                        "cause) and a sequential decode agrees on the count; damaged-but-decodable files are "
                        "noted. Files decord or torchcodec reads wrongly (decord: AVI with B-frames, open GOPs; "
                        "torchcodec: AVI with B-frames) are noted: the exact PyAV reader reads them.")
    c.add_argument("config", type=Path, help="dataset config (YAML: format, root, annotations, ...)")
    c.add_argument("--subset", choices=("train", "val", "all"), default="all")
    c.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    c.add_argument("--deep", action="store_true", help="decode every frame (slow: a full decode of the dataset)")
    c.add_argument("--write-clean", type=Path, metavar="LIST",
                   help="write a 'path label' list of the readable videos of the checked subset(s)")
    c.set_defaults(func=run_check)

    r = dsub.add_parser("prepare", help="re-encode every video under SRC to DST with a given short side (resumable)",
                        description=prep.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("src", type=Path)
    r.add_argument("dst", type=Path)
    r.add_argument("--config", type=Path, metavar="DATASET_YAML",
                   help="the dataset config of SRC (its root must be SRC): its annotation files are rewritten "
                        "under DST to point at the outputs, with DST/dataset.yaml")
    r.add_argument("--short-side", type=int, required=True, help="pixels (videos are never upscaled)")
    r.add_argument("--keyint", type=int, default=16, help="frames between keyframes (smaller: faster seeking)")
    r.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    r.set_defaults(func=run_prepare)


def run_synth(args: argparse.Namespace) -> int:
    classes = args.classes or (probes.PROBE_CLASSES[-1] if args.probe else synth.SynthConfig.classes)
    cfg = synth.SynthConfig(classes=classes, videos_per_class=args.videos_per_class,
                            val_per_class=args.val_per_class, frames=args.frames, seed=args.seed, probe=args.probe)
    if (bad := synth.problem(cfg)) is not None:
        print(f"pas data synth: error: --{bad[0]}: {bad[1]}", file=sys.stderr)
        return 2
    with tqdm(total=synth.total_videos(cfg), desc="synthetic videos", unit="video", disable=None) as bar:
        files = synth.generate(args.out, cfg, progress=bar.update)
    kind = f"probe {cfg.probe} " if cfg.probe else ""
    print(f"wrote {synth.total_videos(cfg)} videos of {cfg.classes} {kind}classes to {args.out}; "
          f"dataset config: {files['config']}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    cfg = load_dataset_config(args.config)
    subsets = ("train", "val") if args.subset == "all" else (args.subset,)
    samples, missing, in_subsets = [], [], {}
    for subset in subsets:
        vl = load_video_list(cfg, subset)
        samples += vl.samples
        missing += vl.missing
        for s in vl.samples:
            in_subsets.setdefault(s.path, set()).add(subset)
    overlap = sum(len(v) > 1 for v in in_subsets.values())
    paths = sorted({s.path for s in samples})
    desc = "checking videos (every frame)" if args.deep else "checking videos"
    with tqdm(total=len(paths), desc=desc, unit="video", disable=None) as bar:
        probes = scan(paths, cfg.backend, args.workers, progress=bar.update, deep=args.deep)
    bad = {p.path: p.error for p in probes if p.error}
    for p in probes:
        if p.error:
            print(f"{p.path}\t{p.error}")
        for note in p.notes:
            print(f"{p.path}\tnote: {note}")
    for name in missing:
        print(f"{name}\tannotated but no such file under {cfg.root}")
    exact = sum(any(n.startswith("read by the exact") for n in p.notes) for p in probes)
    damaged = sum(any(n.startswith("damaged") for n in p.notes) for p in probes)
    print(f"{len(paths) - len(bad)} of {len(paths)} videos readable; {len(bad)} unreadable"
          + (f"; {len(missing)} annotated videos missing" if missing else "")
          + (f"; {exact} read by the exact PyAV reader ({effective_backend(cfg.backend)} returns wrong frames on them)"
             if exact else "")
          + (f"; {damaged} damaged but decodable (used)" if damaged else "")
          + ("" if args.deep else " (quick check: 3 frames per video; --deep decodes every frame)"),
          file=sys.stderr)
    if overlap:
        print(f"{overlap} video{' is' if overlap == 1 else 's are'} in both train and val (the validation accuracy is "
              "then measured partly on training videos)", file=sys.stderr)
    if args.write_clean:  # each video once (a video of both subsets, with the same label, is one line)
        lines = list(dict.fromkeys(f"{os.path.relpath(s.path, cfg.root)} {s.label}" for s in samples
                                   if s.path not in bad))
        args.write_clean.write_text("\n".join(lines) + "\n")
        print(f"wrote {len(lines)} readable videos to {args.write_clean}", file=sys.stderr)
    return 1 if bad or missing else 0


def run_prepare(args: argparse.Namespace) -> int:
    if not args.src.is_dir():
        print(f"pas data prepare: error: {args.src} is not a folder", file=sys.stderr)
        return 2
    if args.short_side < 2 or args.keyint < 1:
        print("pas data prepare: error: --short-side must be >= 2 and --keyint >= 1", file=sys.stderr)
        return 2
    if args.src.resolve() == args.dst.resolve() or args.src.resolve() in args.dst.resolve().parents:
        print(f"pas data prepare: error: DST {args.dst} must be outside SRC {args.src}", file=sys.stderr)
        return 2
    cfg = None
    if args.config is not None:
        cfg = load_dataset_config(args.config)
        if Path(cfg.root).resolve() != args.src.resolve():
            print(f"pas data prepare: error: {args.config}: root is {cfg.root}, not SRC {args.src.resolve()}",
                  file=sys.stderr)
            return 2
    try:
        plan = prep.plan_prepare(args.src, args.dst, args.short_side, args.keyint)
    except prep.PrepareError as exc:
        print(f"pas data prepare: error: {exc}", file=sys.stderr)
        return 2
    total = len(plan.jobs) + plan.done
    with tqdm(total=total, initial=plan.done, desc="re-encoding", unit="video", disable=None) as bar:
        failed = prep.prepare(plan.jobs, args.workers, progress=bar.update)
    for src in sorted(failed):
        print(f"{src}\t{failed[src]}")
    failed_rel = {Path(s).relative_to(args.src).as_posix() for s in failed}
    map_file = prep.write_map(args.dst, plan.mapping, failed_rel)
    print(f"{len(plan.jobs) - len(failed)} re-encoded"
          + (f" ({plan.restamped} with other settings or a changed source)" if plan.restamped else "")
          + f", {plan.done} already done, {len(failed)} failed; mapping: {map_file}", file=sys.stderr)
    if cfg is not None:
        new_cfg = prep.rewrite_annotations(cfg, args.src, args.dst, plan.mapping)
        print(f"annotations rewritten for the outputs; dataset config: {new_cfg}", file=sys.stderr)
    else:
        print("no --config: annotation files were not rewritten (outputs are .mp4; see the mapping)",
              file=sys.stderr)
    return 1 if failed else 0
