"""The stacked ensemble of each task: fit.py fits it (train_meta), stacker.py is the logistic regression with its
out-of-fold scores and thresholds, file.py the JSON file it is saved as (read back as a typed `SavedEnsemble`).
"""
