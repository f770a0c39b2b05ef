"""Where hypotheses run: local subprocesses or SLURM, behind one small interface (base.py)."""
