"""Evaluation of priors and data: the prior benchmark protocols and their metrics."""
