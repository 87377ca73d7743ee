"""After the search: the retraining of the chosen configuration, the one test evaluation, and the export.

`retraining`: the members, planned under a time budget (`MemberPlanner`)
and trained one after another; `evaluate`: the ensemble, the single read of
the test split, MC dropout and calibration; `export`: the files of
`checkpoints/RUN/best/` and the model card; `plots`: the card's pictures.
It knows the search's outcome, never runs a trial, and never imports the
command line or `tuning.service`.
"""
