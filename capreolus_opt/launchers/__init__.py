"""Where points and search workers run: this machine (``local``) or a Slurm job array."""
