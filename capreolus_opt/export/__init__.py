"""Export tracked runs to TensorBoard (``tensorboard.py``) and MLflow (``mlflow.py``)."""
