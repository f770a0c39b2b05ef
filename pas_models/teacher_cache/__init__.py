"""The base network's soft labels, computed once per search and read by every hypothesis (``distill.cache``).

B never changes during a search, yet live distillation runs it forward on the full view at every step
of every hypothesis. With a cache, a stage between iteration 0 and iteration 1 runs B once over
``clips_per_video`` (K) training clips per video and stores, per clip, its **recipe** and B's logits:

- recipe: the clip's start frame, its crop box in source pixels and its horizontal flip, drawn exactly
  as a live training clip is (pas_models.data.sampling / transforms) from a generator seeded by
  (seed, video, k); the frame stride and the resize are B's spec (the manifest holds it);
- logits: B's output on that clip (fp16), all of them, or only the ``top_k`` largest with their class
  indices and the mean of the others (a dropped class gets that mean back: the tail of the tempered
  softmax keeps roughly its mass). Logits, not probabilities: the temperature stays a training choice.

B runs in the teacher BN mode of the search: ``train`` normalises with the statistics of the cache
job's batch (``recipe.batch_per_gpu`` clips in a seeded random order over the shard, as live training
batches clips of random videos), ``eval`` with B's stored statistics (then a stored label equals the
live teacher's output on the same clip: tests/test_teacher_cache.py).

The videos are sharded (video i in shard i mod shards), one job per shard, each writing one numpy
``.npz`` file atomically (``runs/NAME/teacher_cache/shard-K-of-N.npz``) and then its ``result.json``:
a killed shard job runs again from the start of its shard, a finished one is never recomputed. Every
shard file carries the manifest it was made for (the training list's hash, B's weights hash, K, top_k,
seed, teacher BN mode, B's spec); a hypothesis refuses shards whose manifest is not its own.

Training with the cache (pas_models.train.run, pas_models.data.dataset): each epoch, each video's clip
is one of its K recipes (a seeded permutation per video and epoch: K distinct clips before any
repeats); the loader decodes only the student's frames of that recipe, crops the recipe's box and
resizes exactly as the live path does, and the KD term uses the stored logits. No teacher network is
built or loaded. The trade-off: K fixed augmentations per video instead of a fresh one every epoch.

The dataclasses and ``load`` are torch-free (the controller builds tasks and reads results);
``run_shard`` and ``CacheJob`` import torch when called.
"""

from __future__ import annotations

# config.py: what a search sets and a shard job is told and answers (torch- and numpy-free: the controller)
# clips.py: the shard files' manifest, and reading a whole cache (numpy)
# shard.py: the shard job (torch)
