"""One trial, without Ray: config -> data, model -> train loop -> per-epoch result dicts.

Contract used by sweep/ (the Ray trainable is a thin wrapper):

    trial = Trial(config_dict_or_TrialConfig)       # validates; builds data and model
    if checkpoint_dir: trial.load(checkpoint_dir)   # resume (torch.load(weights_only=True))
    for result in trial.epochs():                   # yields one dict per remaining epoch
        trial.save(tmp_dir)                         # checkpoint = a plain dict in tmp_dir/trial.pt
        report(result)

`result` holds trainables.schema.RESULT_SCALARS plus "robustness" and "layers" (lists of row
dicts). A trial whose training loss goes non-finite yields one result with diverged=True and stops.
Same config and seed give the same results on CPU.

UNDER CONSTRUCTION: implemented in this module by the experiment-core work (issue 2).
"""
