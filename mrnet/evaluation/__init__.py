"""Evaluating trained models on a labelled split: metrics with intervals, ROC figures, the report."""
