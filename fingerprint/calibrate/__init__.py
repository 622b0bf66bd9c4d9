"""``fingerprint calibrate``: fit the per-code points to a lender's outcomes, measure the
score (AUC, KS, deciles, bad rate per grade, PSI) and write a grading overlay.

The fit needs the ``calibrate`` extra (scipy, numpy); the metrics and PSI do not.
Nothing heavy is imported here, so the CLI can register the command cheaply.
"""
