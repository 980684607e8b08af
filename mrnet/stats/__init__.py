"""Pure statistics over whole splits: AUC and its bootstrap interval, operating thresholds, DeLong's test,
calibration. Numbers in, numbers out: nothing here reads models, data or files, or draws figures.
"""
