"""Scoring photos: the predictor evaluate, submission and ``catsdogs predict`` share, and the metrics."""
