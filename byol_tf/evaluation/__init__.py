"""Downstream evaluation of exported encoders.

`linear` (frozen encoder, linear classifier), `knn_eval` (weighted kNN), `finetune` (the whole
network on a label subset), `subsets` (which labelled examples are used), `report` (the JSON
the three tools write), on top of `encoders` (SavedModels as Keras layers), `inputs` (the
labelled input pipelines) and `classifier` (the shared SGD loop and top-k scoring). Import
the submodule you need, e.g. `from byol_tf.evaluation.linear import run_linear_eval`.
"""
