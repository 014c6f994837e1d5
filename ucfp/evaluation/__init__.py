"""The evaluation world: data sets, model architectures, training, the attacks that derive
copies of a model, the zoo of derived and independent models, and the checkpoint store.

It builds on `ucfp.core` (models are plain `apply_fn(variables, x)` for the method);
`ucfp.core` never imports it. `ucfp.pipeline` joins the two for the command line.
"""
