"""Hyperparameter searches over gin bindings with Optuna: spaces, storage, workers, status."""
