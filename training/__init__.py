"""Dataset assembly, splits, models, evaluation, MLflow tracking and the ``kycrisk`` command line."""
