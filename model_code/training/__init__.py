"""Training: feature engineering, the training window, fitting, evaluation, the model artifact and its tracking."""
