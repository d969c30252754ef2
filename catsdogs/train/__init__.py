"""Fitting a model: the fit loop with early stopping and resume, the end of training, distribution."""
