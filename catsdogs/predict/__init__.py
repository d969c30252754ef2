"""Scoring photos: the predictor the submission and ``catsdogs predict`` share, scoring the validation split, metrics."""
